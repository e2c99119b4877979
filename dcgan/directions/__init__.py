"""Attribute directions in z: which way to move a latent vector to add glasses, a smile, facial hair, a hair colour.

The recipe (a supervised version of the DCGAN paper's §6.3 vector arithmetic):

1. Train a small multi-label attribute classifier (Keras) on the *real* labelled examples — the TFRecords' `attr/<name>`
   labels (dcgan.schema). Binary attributes are derived from the labels: every 0/1 flag (the avatars' CelebA-named
   flags, CelebA's own ±1 flags) plus a few derived from the avatars' parts (see `derive_attributes`). Accuracy is
   measured on held-out real examples (the eval split, else a hashed 20 % of the data). Beside it, an independent
   *judge* — another architecture (`build_judge`), another seed, the other half of the training examples
   (`judge_half`) — is trained the same way and measured on the same held-out examples; it fits nothing and
   grades every direction, so an edit that fools the classifier it was fitted to does not pass by that alone.
2. Generate many samples z ~ N(0, I) with the exported generator and label them with the classifier.
3. direction = mean z(with) − mean z(without), scaled to unit length (dcgan.latent.unit_direction). Because z ~ N(0, I),
   moving a face by `amount` along a unit direction moves its projection by `amount` standard deviations.
4. Report how well each direction works: on *fresh* samples (another seed), the classifier's mean score for the
   attribute after moving by each amount (±1, ±2, ±3), its change from amount 0, the share of faces with the
   attribute, and the other attributes that change most along the way (entanglement).

Four kinds of direction (`kind` of each entry of `directions`):

- `mean_difference` — step 3 above.
- `boundary` — InterFaceGAN (Shen et al. 2020): the unit normal of a linear classifier (L2-regularised logistic
  regression, class-balanced) separating the generated samples' z by the attribute classifier's verdict.
- `conditional` — InterFaceGAN's conditional manipulation: the boundary normal with the normals of other attributes
  projected out, so moving along it leaves their (linear) scores unchanged. The stored one fixes every other
  attribute whose classifier is reliable (held-out balanced accuracy ≥ `reliable_accuracy`); any other choice is
  computed on request from the stored normals (`conditional_direction`; the studio's /api/directions/conditional).
- `sefa` — closed-form factorization (Shen & Zhou 2021), unsupervised: the top eigenvectors of AᵀA, A = the weights
  of G's first projection (the `project` Dense kernel, z → 4×4×C). No attribute; its effect lists what changes.

Quality (`grade_directions`, `measure_quality`, dcgan.edit_quality, bench/directions_quality.py): for every attribute
that both networks judge reliably, moving fresh faces by +2 (σ) along a direction: success by the judge and by the
classifier and their agreement, net leakage, churn (the share of faces whose verdict on another attribute flips),
beside a control row of random unit directions moved as far, and the linear ceiling (the best success any unit
direction could reach were the attribute linear in z — at +2σ, 0.9 needs a prevalence ≥ 0.24).

The result is stored beside the SavedModel as `<saved_model_dir>/assets.extra/directions.json` (format
`dcgan-directions/2`; /1 files, mean-difference only, are still read), so every served version carries its own
directions; the web studio reads it from there. The attribute classifier is exported beside it as its own SavedModel,
`assets.extra/attribute_classifier/` (signature `serving_default`: `images` float32 [N, H, W, C] in [-1, 1] →
`scores` [N, A]; names, threshold and the real labels' co-occurrence counts in its `assets.extra/attributes.json`),
so the studio can score faces (specify, then generate) without any training code; the judge likewise, in
`assets.extra/attribute_judge/` (the same format, `role` "judge").

The package, one file per part (each imports only files above it in this list):

- `config.py` — `DirectionsConfig`, the step's options (flags of `dcgan directions`, the pipeline's section).
- `kinds.py` — the four kinds of direction and how each is computed from z and scores (or G's weights).
- `store.py` — the file format: directions.json beside the SavedModel and the folders of the exported networks;
  writing it, reading and checking it.
- `labels.py` — attribute labels from the real examples: binary attributes, labelled data, held-out and judge splits.
- `classifiers.py` — the classifier and the judge: architectures, training, held-out metrics, export and loading.
- `effect.py` — each direction's effect measured by the classifier on fresh samples, and a slider's suggested step.
- `grading.py` — the quality table graded by the judge beside a random control, also measured afresh.
- `compute.py` — the whole computation, and what the pipeline's Trainer calls after the export.
- `report.py` — the text report of `dcgan directions`.

Every file imports TensorFlow/Keras only inside the functions that need them (reading a directions file is light).
"""

from dcgan.directions.classifiers import (
    CLASSIFIER_INFO,
    AttributeClassifier,
    export_attribute_classifier,
    heldout_metrics,
)
from dcgan.directions.compute import compute_and_store_directions, compute_directions
from dcgan.directions.config import DEFAULT_AMOUNTS, DirectionsConfig
from dcgan.directions.effect import measure_effect, suggested_amount
from dcgan.directions.grading import grade_directions, judged_attributes, measure_quality
from dcgan.directions.kinds import (
    KIND_SUFFIX,
    conditional_direction,
    fit_boundary,
    fit_direction,
    projection_kernel,
    sefa_directions,
)
from dcgan.directions.labels import (
    NoAttributeLabels,
    derive_attributes,
    judge_half,
    label_matrix,
    resolve_labelled_files,
)
from dcgan.directions.report import format_report
from dcgan.directions.store import (
    CLASSIFIER_DIR,
    DIRECTIONS_FILE,
    FORMAT,
    FORMAT_V1,
    JUDGE_DIR,
    DirectionsFileError,
    classifier_path_for,
    default_classifier_dir,
    default_judge_dir,
    judge_path_for,
    read_directions,
    write_directions,
)

__all__ = [
    "AttributeClassifier",
    "CLASSIFIER_DIR",
    "CLASSIFIER_INFO",
    "DEFAULT_AMOUNTS",
    "DIRECTIONS_FILE",
    "DirectionsConfig",
    "DirectionsFileError",
    "FORMAT",
    "FORMAT_V1",
    "JUDGE_DIR",
    "KIND_SUFFIX",
    "NoAttributeLabels",
    "classifier_path_for",
    "compute_and_store_directions",
    "compute_directions",
    "conditional_direction",
    "default_classifier_dir",
    "default_judge_dir",
    "derive_attributes",
    "export_attribute_classifier",
    "fit_boundary",
    "fit_direction",
    "format_report",
    "grade_directions",
    "heldout_metrics",
    "judge_half",
    "judge_path_for",
    "judged_attributes",
    "label_matrix",
    "measure_effect",
    "measure_quality",
    "projection_kernel",
    "read_directions",
    "resolve_labelled_files",
    "sefa_directions",
    "suggested_amount",
    "write_directions",
]
