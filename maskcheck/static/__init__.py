"""The static engine: reads a model's graph and runs the padded-axis dataflow.

Modules, in the order a check uses them:

* `adapter`: turns a Keras model into a `graph.MaskGraph` (Keras-free values);
* `semantics`: what each built-in Keras layer and keras.ops call does to padded
  axes and masks; `hub` adds the keras-hub layers;
* `ops`: the operation-level reader for code maskcheck does not know (custom
  layers, Lambdas, custom `compute_mask` and `compute_loss`): it traces the code
  on symbolic inputs and runs the same dataflow over the backend operations;
* `dataflow`: the padded-axis dataflow over a MaskGraph, whose events the
  rules in `maskcheck.rules` turn into findings.
"""
