"""The FHIR R4 elements cledecide reads, as models built for exactly that.

An EHR export is mostly what we never read (Claims, ExplanationOfBenefits, notes,
imaging): validating all of it with full FHIR models cost ~90% of reading a 3 MB
Synthea bundle (issues 20 and 23). Here each resource type the code map reads has a
model of the elements read, validated as FHIR R4 defines them (primitive formats,
required elements, one choice of a [x] element); every other element, and every other
resource type, is not validated: a resource of another type only has to name a
resourceType that FHIR R4 defines. Field names are the FHIR element names, so the
readers read `resource.valueQuantity.value` as the specification writes it.
"""
from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from typing import Annotated, Any, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, \
    StrictStr, StringConstraints, model_validator

# The resource types of FHIR R4 (4.0.1) and R4B (4.3): a type outside this list is a
# typo or not FHIR, and is refused rather than skipped unread.
RESOURCE_TYPES = frozenset("""
Account ActivityDefinition AdministrableProductDefinition AdverseEvent AllergyIntolerance
Appointment AppointmentResponse AuditEvent Basic Binary BiologicallyDerivedProduct
BodyStructure Bundle CapabilityStatement CarePlan CareTeam CatalogEntry ChargeItem
ChargeItemDefinition Citation Claim ClaimResponse ClinicalImpression ClinicalUseDefinition
CodeSystem Communication CommunicationRequest CompartmentDefinition Composition ConceptMap
Condition Consent Contract Coverage CoverageEligibilityRequest CoverageEligibilityResponse
DetectedIssue Device DeviceDefinition DeviceMetric DeviceRequest DeviceUseStatement
DiagnosticReport DocumentManifest DocumentReference EffectEvidenceSynthesis Encounter
Endpoint EnrollmentRequest EnrollmentResponse EpisodeOfCare EventDefinition Evidence
EvidenceReport EvidenceVariable ExampleScenario ExplanationOfBenefit FamilyMemberHistory
Flag Goal GraphDefinition Group GuidanceResponse HealthcareService ImagingStudy
Immunization ImmunizationEvaluation ImmunizationRecommendation ImplementationGuide
Ingredient InsurancePlan Invoice Library Linkage List Location ManufacturedItemDefinition
Measure MeasureReport Media Medication MedicationAdministration MedicationDispense
MedicationKnowledge MedicationRequest MedicationStatement MedicinalProduct
MedicinalProductAuthorization MedicinalProductContraindication MedicinalProductDefinition
MedicinalProductIndication MedicinalProductIngredient MedicinalProductInteraction
MedicinalProductManufactured MedicinalProductPackaged MedicinalProductPharmaceutical
MedicinalProductUndesirableEffect MessageDefinition MessageHeader MolecularSequence
NamingSystem NutritionOrder NutritionProduct Observation ObservationDefinition
OperationDefinition OperationOutcome Organization OrganizationAffiliation
PackagedProductDefinition Parameters Patient PaymentNotice PaymentReconciliation Person
PlanDefinition Practitioner PractitionerRole Procedure Provenance Questionnaire
QuestionnaireResponse RegulatedAuthorization RelatedPerson RequestGroup
ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject RiskAssessment
RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen
SpecimenDefinition StructureDefinition StructureMap Subscription SubscriptionStatus
SubscriptionTopic Substance SubstanceDefinition SubstanceNucleicAcid SubstancePolymer
SubstanceProtein SubstanceReferenceInformation SubstanceSourceMaterial
SubstanceSpecification SupplyDelivery SupplyRequest Task TerminologyCapabilities
TestReport TestScript ValueSet VerificationResult VisionPrescription
""".split())

# FHIR R4 primitive formats (the specification's regular expressions, datatypes.html).
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_TIME = (r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
         r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))")
_DATE_RE = re.compile(_YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?")
_DATETIME_RE = re.compile(_YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(" + _TIME
                          + r")?)?)?")
_INSTANT_RE = re.compile(_YEAR + r"-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])" + _TIME)


def _calendar(value: str) -> str:
    if len(value) >= 10:
        try:
            dt.date.fromisoformat(value[:10])
        except ValueError:
            raise ValueError(f"'{value}' is not a calendar date") from None
    return value


def _matching(pattern: re.Pattern[str], name: str) -> Any:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"'{value}' is not a FHIR {name}")
        return _calendar(value)
    return AfterValidator(check)


Date = Annotated[StrictStr, _matching(_DATE_RE, "date (YYYY, YYYY-MM or YYYY-MM-DD)")]
DateTime = Annotated[StrictStr, _matching(_DATETIME_RE, "dateTime")]
Instant = Annotated[StrictStr, _matching(_INSTANT_RE, "instant")]
Code = Annotated[StrictStr, StringConstraints(pattern=r"^[^\s]+( [^\s]+)*$")]
Id = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z0-9\-\.]{1,64}$")]
Uri = Annotated[StrictStr, StringConstraints(pattern=r"^\S+$")]
Text = Annotated[StrictStr, StringConstraints(min_length=1)]
Decimal_ = Union[StrictInt, Annotated[float, Field(strict=True, allow_inf_nan=False)]]
PositiveInt = Annotated[StrictInt, Field(ge=1)]


class Element(BaseModel):
    """An element: what is read is validated, everything else is ignored unread."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def _one_of(data: Any, prefix: str, names: tuple[str, ...], required: bool = False) -> Any:
    if isinstance(data, dict):
        elements = _elements(prefix, names)
        found = data.keys() & elements[1]
        if len(found) > 1:
            given = [n for n in elements[0] if n in found]
            raise ValueError(f"only one of {', '.join(given)} may be given")
        if required and not found:
            raise ValueError(f"{prefix}[x] is required ({' or '.join(elements[0])})")
    return data


@lru_cache(maxsize=None)
def _elements(prefix: str, names: tuple[str, ...]) -> tuple[tuple[str, ...], frozenset[str]]:
    """The element names of a choice [x], in order and as a set (a set intersection finds
    the given ones: every Observation is checked twice)."""
    full = tuple(prefix + n for n in names)
    return full, frozenset(full)


class Coding(Element):
    system: Uri | None = None
    code: Code | None = None
    display: Text | None = None


class CodeableConcept(Element):
    coding: list[Coding] | None = None
    text: Text | None = None


class Reference(Element):
    reference: Text | None = None
    display: Text | None = None


class Period(Element):
    start: DateTime | None = None
    end: DateTime | None = None


class Quantity(Element):
    value: Decimal_ | None = None
    comparator: Code | None = None
    unit: Text | None = None
    system: Uri | None = None
    code: Code | None = None


class Ratio(Element):
    numerator: Quantity | None = None
    denominator: Quantity | None = None


class TimingRepeat(Element):
    frequency: PositiveInt | None = None
    period: Decimal_ | None = None
    periodUnit: Code | None = None


class Timing(Element):
    repeat: TimingRepeat | None = None
    code: CodeableConcept | None = None


class DoseAndRate(Element):
    doseQuantity: Quantity | None = None


class Dosage(Element):
    text: Text | None = None
    timing: Timing | None = None
    doseAndRate: list[DoseAndRate] | None = None


class Resource(Element):
    resourceType: StrictStr
    id: Id | None = None

    def get_resource_type(self) -> str:
        return self.resourceType


class Other(Resource):
    """A resource of a type cledecide does not read: named, never validated."""

    id: Any = None


class Patient(Resource):
    birthDate: Date | None = None
    gender: Code | None = None
    deceasedBoolean: StrictBool | None = None
    deceasedDateTime: DateTime | None = None

    @model_validator(mode="before")
    @classmethod
    def _choices(cls, data: Any) -> Any:
        return _one_of(data, "deceased", ("Boolean", "DateTime"))


class Observation(Resource):
    status: Code
    code: CodeableConcept
    subject: Reference | None = None
    focus: list[Reference] | None = None
    effectiveDateTime: DateTime | None = None
    effectivePeriod: Period | None = None
    effectiveInstant: Instant | None = None
    issued: Instant | None = None
    valueQuantity: Quantity | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueString: StrictStr | None = None
    valueBoolean: StrictBool | None = None
    valueInteger: StrictInt | None = None
    valueDateTime: DateTime | None = None

    @model_validator(mode="before")
    @classmethod
    def _choices(cls, data: Any) -> Any:
        _one_of(data, "effective", ("DateTime", "Period", "Timing", "Instant"))
        return _one_of(data, "value", ("Quantity", "CodeableConcept", "String", "Boolean",
                                       "Integer", "Range", "Ratio", "SampledData", "Time",
                                       "DateTime", "Period"))


class Condition(Resource):
    clinicalStatus: CodeableConcept | None = None
    verificationStatus: CodeableConcept | None = None
    code: CodeableConcept | None = None
    subject: Reference
    onsetDateTime: DateTime | None = None
    onsetPeriod: Period | None = None
    abatementDateTime: DateTime | None = None
    abatementPeriod: Period | None = None
    recordedDate: DateTime | None = None
    bodySite: list[CodeableConcept] | None = None   # where: extent (fhir-map condition_extent)
    severity: CodeableConcept | None = None         # reported only: severity is not extent

    @model_validator(mode="before")
    @classmethod
    def _choices(cls, data: Any) -> Any:
        _one_of(data, "onset", ("DateTime", "Age", "Period", "Range", "String"))
        return _one_of(data, "abatement", ("DateTime", "Age", "Period", "Range", "String"))


class Ingredient(Element):
    itemCodeableConcept: CodeableConcept | None = None
    itemReference: Reference | None = None
    strength: Ratio | None = None


class Medication(Resource):
    code: CodeableConcept | None = None
    ingredient: list[Ingredient] | None = None


class _MedicationUse(Resource):
    status: Code
    subject: Reference
    medicationCodeableConcept: CodeableConcept | None = None
    medicationReference: Reference | None = None
    contained: list[dict[str, Any]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _medication(cls, data: Any) -> Any:
        return _one_of(data, "medication", ("CodeableConcept", "Reference"), required=True)


class MedicationStatement(_MedicationUse):
    effectiveDateTime: DateTime | None = None
    effectivePeriod: Period | None = None
    dateAsserted: DateTime | None = None
    dosage: list[Dosage] | None = None
    statusReason: list[CodeableConcept] | None = None


class DispenseRequest(Element):
    validityPeriod: Period | None = None


class MedicationRequest(_MedicationUse):
    intent: Code
    authoredOn: DateTime | None = None
    dispenseRequest: DispenseRequest | None = None
    dosageInstruction: list[Dosage] | None = None
    statusReason: CodeableConcept | None = None


class Procedure(Resource):
    status: Code
    code: CodeableConcept | None = None
    subject: Reference
    performedDateTime: DateTime | None = None
    performedPeriod: Period | None = None
    outcome: CodeableConcept | None = None

    @model_validator(mode="before")
    @classmethod
    def _choices(cls, data: Any) -> Any:
        return _one_of(data, "performed", ("DateTime", "Period", "String", "Age", "Range"))


class SuspectEntity(Element):
    instance: Reference


class AdverseEvent(Resource):
    actuality: Code
    event: CodeableConcept | None = None
    subject: Reference
    date: DateTime | None = None
    suspectEntity: list[SuspectEntity] | None = None


class BundleLink(Element):
    relation: StrictStr
    url: Uri


class BundleEntry(Element):
    fullUrl: Uri | None = None
    resource: dict[str, Any] | None = None


class Bundle(Resource):
    type: Code
    timestamp: Instant | None = None
    link: list[BundleLink] | None = None
    entry: list[BundleEntry] | None = None


READ: dict[str, type[Resource]] = {
    "Patient": Patient, "Observation": Observation, "Condition": Condition,
    "MedicationStatement": MedicationStatement, "MedicationRequest": MedicationRequest,
    "Medication": Medication, "Procedure": Procedure, "AdverseEvent": AdverseEvent,
    "Bundle": Bundle}
