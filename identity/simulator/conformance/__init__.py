"""The conformance kit: the marketplace's callback cases, run against any KooGallery endpoint.

An ISV runs it (`identity simulate conformance`, docs/conformance.md) against its own
production address before KooGallery's dial test does: every basic and kit interface in every
documented shape, debug calls, signatures right and wrong, limits, V1 and the order-details
path, each answer judged against the contract (result code, instanceId, shape, time), and the
state the endpoint keeps judged by queryInstance and by signing members in through the kit's own
auth centre (`probe`). Modules: `catalogue` (what a case is), `exchange` (the wire), `checks`
(what an answer must be), `subjects` (the run's world and bodies), `session` (a run, a case),
`cases_*` (the cases, by feature), `runner`, `report`, `cli`.
"""
