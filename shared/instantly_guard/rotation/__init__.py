"""Safe, resumable rotation of managed Instantly API keys and webhook secrets (docs/rotation.md).

Module map, in the order a rotation runs through it:

- `events`: decoding the Pub/Sub messages the function receives (`RotateRequest`, sweep, ignored);
- `function`: `RotationFunction.handle`, the ack-or-retry decision behind `functions/key_rotation`;
- `builder`: wiring the collaborators from the environment, once per instance;
- `model`: what a managed secret declares and where its rotation stands (`AnnotationKey`, aliases);
- `run`: one run over one secret (`Trigger`, `Run`); `lease`: who may change its state, until when;
- `engine`: the protocol, Create / Test / Store / Finish / Revoke (`Rotator`);
- `steps`: the forward steps; `keytest`: testing a new key; `revoke`: revocation and destruction
  after the grace and retention periods;
- `admin`: the Instantly calls a rotation makes; `webhook_secret`: webhook-secret versions;
- `results`: what a rotation, a housekeeping pass and a sweep report; `errors`: the rotation's
  errors, under `GuardError`.

Nothing is imported here: the function imports only the modules its event needs.
"""
