"""docs/inventory.md documents every inventory key, with its default, and no key that does not exist.

The keys come from docs/inventory.schema.json, which tests/unit/test_inventory.py keeps equal to
the inventory's models. A key is written as its path: `health.port`, `aws.role.arn`, `smoke[].url`
(a list of mappings), `load_balancers[].kind` and `load_balancers[alb].port` (a list of
mappings told apart by `kind`). A model met a second time (personal.load_balancers) is one key.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs/inventory.schema.json").read_text())
PAGE = ROOT / "docs/inventory.md"
HEADER = "| Key | Type | Default | Meaning |"
# Value types written as mappings ({stack_output: KEY}, {from_env: VAR}): a key takes them as a value.
VALUE_MODELS = {"StackOutput", "FromEnv"}


def _alternatives(node: dict) -> list[dict]:
    """A node's non-null alternatives (anyOf/oneOf flattened)."""
    for word in ("anyOf", "oneOf"):
        if word in node:
            return [a for alt in node[word] if alt.get("type") != "null" for a in _alternatives(alt)]
    return [node]


def _model(node: dict) -> str | None:
    ref = node.get("$ref", "")
    name = ref.rsplit("/", 1)[-1] if ref.startswith("#/$defs/") else None
    return None if name in VALUE_MODELS else name


def _kinds(node: dict) -> dict[str, str]:
    """Model name -> its `kind` for a discriminated union, read from the discriminator's mapping."""
    for holder in [node, *node.get("anyOf", []), *node.get("oneOf", [])]:
        mapping = holder.get("discriminator", {}).get("mapping")
        if mapping:
            return {ref.rsplit("/", 1)[-1]: kind for kind, ref in mapping.items()}
    return {}


def schema_keys() -> dict[str, dict]:
    """Every key path -> its schema node: leaves and the mappings above them."""
    defs, seen, keys = SCHEMA["$defs"], set(), {}

    def walk(model: str, prefix: str, skip: str = "") -> None:
        seen.add(model)
        for name, node in defs[model].get("properties", {}).items():
            if name != skip:
                field(prefix + name, node)

    def field(path: str, node: dict) -> None:
        keys[path] = node
        alts = _alternatives(node)
        if len(alts) == 1 and alts[0].get("type") == "array" and "items" in alts[0]:
            items = alts[0]["items"]
            models = [_model(a) for a in _alternatives(items)]
            if all(models) and not seen.intersection(models):
                kinds = _kinds(items)
                if kinds:
                    keys[path + "[].kind"] = {}
                for m in models:
                    walk(m, f"{path}[{kinds[m]}]." if kinds else f"{path}[].", skip="kind" if kinds else "")
            return
        models = [_model(a) for a in alts]
        if alts and all(models) and not seen.intersection(models):
            for m in models:
                walk(m, path + ".")

    for name, node in SCHEMA["properties"].items():
        field(name, node)
    return keys


def documented() -> dict[str, str]:
    """Key -> its Default cell, from every key table of docs/inventory.md."""
    rows, in_table = {}, False
    for line in PAGE.read_text().splitlines():
        if line.strip() == HEADER:
            in_table = True
        elif in_table and line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            for key in re.findall(r"`([^`]+)`", cells[0]):
                assert key not in rows, f"docs/inventory.md documents `{key}` twice"
                rows[key] = cells[2]
        elif not line.startswith("|"):
            in_table = False
    return rows


def _row_hint(key: str, node: dict) -> str:
    default = json.dumps(node["default"]) if "default" in node else "required"
    what = node.get("description") or node.get("title") or ""
    return f"| `{key}` | TYPE | {default} | {what} |"


def test_the_page_has_key_tables():
    assert len(documented()) >= 90 and len(schema_keys()) >= 90


def test_every_key_of_the_models_is_documented():
    keys, rows = schema_keys(), documented()
    leaves = [k for k in keys if not any(o.startswith(k + ".") or o.startswith(k + "[") for o in keys)]
    missing = [k for k in leaves if k not in rows]
    assert not missing, ("docs/inventory.md has no row for these inventory keys; add one per key to its key table"
                         " (Key | Type | Default | Meaning; keys are read from docs/inventory.schema.json: after changing the models, run"
                         " scripts/inventory-schema):\n" + "\n".join(_row_hint(k, keys[k]) for k in missing))


def test_every_documented_key_exists():
    keys = schema_keys()
    unknown = [k for k in documented() if k not in keys]
    assert not unknown, (f"docs/inventory.md documents keys the inventory does not have: {unknown}; remove or"
                         f" rename them (keys are: {sorted(keys)})")


def _same(cell: str, default) -> bool:
    text = cell.strip("`")
    if isinstance(default, bool):
        return text == str(default).lower()
    if isinstance(default, (int, float)):
        return re.fullmatch(r"[0-9.]+", text) is not None and float(text) == default
    if isinstance(default, list):
        return text == json.dumps(default)
    return text == default


def test_every_documented_default_is_the_models_default():
    keys, rows = schema_keys(), documented()
    wrong = [f"`{k}`: documented {rows[k]!r}, the model's default is {json.dumps(keys[k]['default'])}"
             for k in rows if k in keys and isinstance(keys[k].get("default"), (bool, int, float, str, list))
             and keys[k]["default"] not in ([], "") and not _same(rows[k], keys[k]["default"])]
    assert not wrong, "fix these defaults in docs/inventory.md:\n" + "\n".join(wrong)


def test_a_required_key_is_documented_as_required():
    keys, rows = schema_keys(), documented()
    required = set(SCHEMA.get("required", []))
    for prefix, models in _models_by_prefix(keys).items():  # a key of a union is required if every member requires it
        required |= {prefix + n for n in set.intersection(*(set(SCHEMA["$defs"][m].get("required", [])) for m in models))}
    wrong = [k for k in sorted(required) if k in rows and not rows[k].startswith("required")]
    assert not wrong, f"these keys have no default in the models; write 'required' in their Default cell: {wrong}"


def _models_by_prefix(keys: dict[str, dict]) -> dict[str, list[str]]:
    """Key prefix ('aws.role.', 'smoke[].', 'load_balancers[alb].') -> the models walked under it."""
    out: dict[str, list[str]] = {}
    for path, node in keys.items():
        alts = _alternatives(node)
        array = len(alts) == 1 and alts[0].get("type") == "array"
        members = _alternatives(alts[0].get("items", {})) if array else alts
        kinds = _kinds(alts[0].get("items", {})) if array else {}
        for m in filter(None, map(_model, members)):
            prefix = (f"{path}[{kinds[m]}]." if kinds else f"{path}[].") if array else path + "."
            if any(k.startswith(prefix) for k in keys):
                out.setdefault(prefix, []).append(m)
    return out
