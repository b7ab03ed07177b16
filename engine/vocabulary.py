"""The contract's fixed words (contract section 3). Rule files may only use these."""
from __future__ import annotations

DRUGS = (
    "topical_corticosteroid", "topical_calcineurin_inhibitor", "systemic_corticosteroid",
    "hydroxychloroquine", "chloroquine", "quinacrine", "methotrexate", "mycophenolate",
    "dapsone", "acitretin", "isotretinoin", "thalidomide", "lenalidomide", "belimumab",
    "anifrolumab",
)
CONDITIONS = (
    "peripheral_neuropathy", "venous_thromboembolism", "retinopathy", "g6pd_deficiency",
    "liver_disease", "renal_impairment", "alcohol_misuse", "psoriasis", "porphyria",
    "cytopenia", "antiphospholipid_antibodies", "anti_ro", "immobility", "tamoxifen",
)
ANTITHROMBOTIC = ("none", "aspirin", "anticoagulant", "unknown")
SYMPTOMS = (
    "gastrointestinal", "paresthesia", "numbness", "visual_change", "leg_swelling",
    "chest_pain", "dyspnoea", "rash", "fever", "infection", "mood_change", "insomnia",
)
MONITORING = (
    "clasi_review", "relapse_watch", "cbc", "liver_function", "renal_function",
    "pregnancy_test", "nerve_conduction", "neuropathy_symptoms", "retinal_exam",
    "vte_signs", "methaemoglobin", "lipids", "sle_screen", "contraception",
)
ACTIONS = ("start", "add", "switch", "continue", "increase", "reduce", "stop",
           "reintroduce", "gather_data", "refer")
STAGES = ("general", "topical", "bridge", "antimalarial", "immunosuppressant",
          "refractory", "monitoring", "specialist")
SEVERITIES = ("info", "warning", "critical")
SUBTYPES = ("ACLE", "SCLE", "DLE", "LEP", "CHLE", "LET", "other")
STOP_REASONS = ("inefficacy", "adverse_event", "remission", "dose_reduced",
                "patient_choice", "pregnancy", "other")
RESPONSES = ("none", "partial", "complete", "unknown")
CONTRACEPTION = ("none", "one_method", "two_methods", "abstinence", "unknown")
LABS = ("egfr", "neutrophils", "platelets", "alt", "g6pd")
