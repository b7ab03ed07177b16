"""The rulebook: what a clinical reviewer reads and signs. The static HTML site of a
rule set (site.py), review records written into the rule files (records.py) and the
rule set as a FHIR R4 PlanDefinition with its sign-off (plandefinition.py)."""
