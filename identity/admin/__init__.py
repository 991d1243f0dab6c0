"""The tenant admin's wing: local passwords, their resets and the limits on those (contract §6,
mirrored), and the console built on them (`/admin` pages, `/api/admin` JSON).

Services here take the caller's session and never commit, except the ones that must call out
(send a message, or hash a password) between writes: those take the `Database` and own their
short transactions, each saying in its docstring what it writes before and after the call.
"""
