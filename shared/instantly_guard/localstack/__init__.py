"""The local stack (`make run`) and its scripted walkthrough (`make demo`).

Development tooling: it drives the sandbox (through its CLI and HTTP control API, never by import
except for the demo policy) and the five functions under functions-framework, with the local
backends. Modules: `processes` (children in their own process groups), `state` (stack.json, stale
stacks), `provision` (secrets and the demo webhook), `stack` (LocalStack), `guide`, `demo`.
"""
