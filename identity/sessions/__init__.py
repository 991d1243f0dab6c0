"""Member sessions, used by the marketplace sign-in, the OpenID Provider and the admin console
alike: opening one, the cookie, renewal's lease, CSRF tokens, and the reason a browser is told
after its session ended. `store` holds the table's statements, `browser` the cookies and the
redirect allow-list, `devices` what a session keeps of the browser that signed in, `service`
the `Sessions` object the app wires once."""

from identity.sessions.devices import Seen
from identity.sessions.service import Sessions
from identity.sessions.store import Ending, Policy, SignedIn, Tokens, hash_id

__all__ = ["Ending", "Policy", "Seen", "Sessions", "SignedIn", "Tokens", "hash_id"]
