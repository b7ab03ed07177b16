"""The evaluation pipeline, one module per stage and data flowing one way:
load -> validate -> (ruleset: the rules checked; compile) -> evaluate -> decide ->
explain -> render. Nothing here knows about FHIR, the service or the CLI."""
