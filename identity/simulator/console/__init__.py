"""The buyer's console: the enterprise administrator's side of KooGallery (contract §6).

The marketplace's buyer creates an enterprise, binds the purchased app to it, keeps its
departments and members, authorises members for the app and resets their passwords; KooGallery
tells the ISV what changed through signed syncs (§0.4, §3). This package plays that console on
the simulator's auth centre (`/console`), so a developer or a test can drive identity the way a
customer would:

- `world`: each change as a function from the world (scenario.py) to the next one, validated
  whole by `Scenario`, the one rule of what the marketplace can hold;
- `actions`: each console action, a change plus the syncs it sends and the messages it writes;
- `deliveries`: those syncs, signed and posted to the ISV, their answers kept, and what was
  not delivered sent again on request;
- `passwords`, `first_sign_in`, `resets`: members' passwords (initial, changed at the first
  sign-in, reset with a code sent to the administrator, within limits);
- `access`: who may use the console (the scenario's buyer, from this machine, with a CSRF
  token on every form); `forms`: what the forms and the CSV import accept;
- `routes`, `pages`, `templates`: the web console itself.

docs/simulator-console.md describes it for its users.
"""
