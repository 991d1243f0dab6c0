"""A local KooGallery for development, demos and tests (design: `simulator/`).

Two halves, both faithful to the KooGallery contract (see docs/marketplace.md): an auth centre
shaped like the tenant's OneAccess (`authcentre`, §5), and a sender that signs and delivers the
marketplace's basic and kit calls (`sender`, §2-§4) from a scenario file (`scenario`). `cli`
mounts both as `identity simulate`.
"""
