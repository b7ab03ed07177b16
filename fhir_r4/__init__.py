"""FHIR R4 in and out: a Bundle or CDS Hooks prefetch becomes the contract's patient
record through the reviewed code map (rules/fhir-map.yaml); a record becomes its FHIR
twin (test data)."""
