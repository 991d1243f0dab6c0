"""The apps' change events: the outbox the directory and `identity.access` write in the
transaction that makes a change (`outbox`), and their signed delivery by `identity worker`
(`delivery`). docs/events.md says what an app receives."""
