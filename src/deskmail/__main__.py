import sys

from deskmail.cli.main import main

sys.exit(main())
