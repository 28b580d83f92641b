"""Declarative rules over analysis results: flags with reasons, and built-in profiles.

A rule set is YAML (docs/rules.md has the language, the unknown-value semantics and the
profiles' thresholds)::

    name: my-check
    rules:
      - id: one-face
        require: faces == 1
        message: "expected exactly one face, found {faces}"
      - id: frontal
        per_face: true
        require: abs(face.head_pose.yaw) <= 10
        when_unknown: flag          # a face whose pose cannot be measured is flagged (default)

Stable API (used by the CLI, the HTTP service and the review page):

* :func:`load_rules(source) <load_rules>` -> :class:`RuleSet`: ``source`` is a built-in profile
  name (:data:`PROFILES`: ``"id-photo"``, ``"publish-safe"``), a path to a YAML file, YAML text
  (a string holding a line break) or a mapping. Raises :class:`mien.errors.RuleError`
  (code ``InvalidRules``; ``line``/``column`` of the fault) or
  :class:`mien.errors.RefusedAttributeError` (code ``RefusedAttribute``, the same explanation
  as everywhere) when a rule names something mien refuses to compute.
  ``load_rules`` reads files for path strings: for untrusted input (an HTTP parameter) use
  :func:`load_profile(name) <load_profile>` (built-in profiles only, never a file) or
  :func:`parse_rules(text) <parse_rules>` (YAML text only).
* :attr:`RuleSet.required_features`: the feature names to give :class:`mien.AnalyzerOptions`
  (``FaceAnalyzer(features=rules.required_features)``), or :meth:`RuleSet.features_with` to
  merge them with features of your own.
* :meth:`RuleSet.evaluate(result) <RuleSet.evaluate>` -> ``list[Flag]`` for an
  :class:`mien.types.ImageResult` (an unreadable image gets one ``"unreadable"`` flag);
  :meth:`RuleSet.evaluate_faces(faces, width, height) <RuleSet.evaluate_faces>` for the
  :class:`mien.types.Faces` of one video frame or stream frame;
  :meth:`RuleSet.check(result) <RuleSet.check>` -> :class:`CheckResult` with ``passed``
  (no flag of severity ``error``) and ``to_dict()`` (the ``mien check`` JSON line).
* :class:`Flag`: ``rule`` (id), ``severity`` (``error``/``warning``/``info``), ``message``
  (human-readable, with the measured values), ``face`` (index into ``faces`` or None),
  ``unknown`` (flagged because a value could not be judged), ``values`` (what was measured);
  ``to_dict()``.

Evaluation never uses ``eval``: expressions are tokenized, parsed and walked by this package,
and every name is checked against what mien computes when the rules are loaded.
"""

from mien.errors import RefusedAttributeError, RuleError
from mien.rules.expression import FUNCTIONS, Expression, compile_expression
from mien.rules.fields import FIELDS, FieldSpec, Scene
from mien.rules.loader import PROFILES, load_profile, load_rules, parse_rules, profile_text
from mien.rules.ruleset import SEVERITIES, UNREADABLE, CheckResult, Flag, Rule, RuleSet, passes
from mien.rules.values import Unknown

__all__ = [
    "FIELDS",
    "FUNCTIONS",
    "PROFILES",
    "SEVERITIES",
    "UNREADABLE",
    "CheckResult",
    "Expression",
    "FieldSpec",
    "Flag",
    "RefusedAttributeError",
    "Rule",
    "RuleError",
    "RuleSet",
    "Scene",
    "Unknown",
    "compile_expression",
    "load_profile",
    "load_rules",
    "parse_rules",
    "passes",
    "profile_text",
]
