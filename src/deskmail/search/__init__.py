"""Search: the query language (:mod:`.query`); the index and its SQL live in ``deskmail.store.search``."""
