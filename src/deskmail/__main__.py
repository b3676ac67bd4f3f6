import sys

from deskmail.cli.entry import main

sys.exit(main())
