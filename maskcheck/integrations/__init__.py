"""Integrations: maskcheck inside the tools a model's authors already use.

* `pytest_plugin`: the ``maskcheck`` fixture and marker, ``pytest --maskcheck``
  (the ``pytest11`` entry point);
* `keras_callback`: `MaskCheck`, the ``model.fit`` callback (public path `maskcheck.keras`);
* `assertions`: `assert_padding_invariant`, `assert_loss_ignores_padding`, `PaddingLeakError`;
* `strategies`: Hypothesis strategies (`padded_batches`, `lengths`, `architectures`),
  and `zoo`, the custom layers `architectures` draws from;
* `testing`: the rule-example harness our tests and users' share.

Each keeps its old import path (`maskcheck.keras`, `maskcheck.strategies`, ...).
Importing this package imports none of them (several load Keras or Hypothesis).
"""
