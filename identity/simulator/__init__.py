"""A local KooGallery for development, demos and tests (design: `simulator/`).

Two halves, both faithful to the KooGallery contract (see docs/marketplace.md): an auth centre
shaped like the tenant's OneAccess (`authcentre`, §5), and a sender that signs and delivers the
marketplace's basic and kit calls (`sender`, §2-§4) from a scenario file (`scenario`). The
auth centre also serves the buyer's console (`console`, §6), and `conformance` plays the
marketplace's callback cases against any ISV endpoint. `cli` mounts them as `identity simulate`.
"""
