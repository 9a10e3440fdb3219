"""Property-based tests of the request parameter parser (hypothesis)."""

import dataclasses
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from nst.errors import ParamError
from nst.params import StyleParams

FIELDS = {f.name: f for f in dataclasses.fields(StyleParams)}
scalars = st.one_of(
    st.text(max_size=12),
    st.binary(max_size=12),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, 10**400, -(10**400)]),
    st.sampled_from(["relu1_1", "conv4_2", "1e400", "adam"]),
)
# Anything a JSON body can carry, nested: lists in lists, objects in lists.
raw_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.sampled_from(sorted(FIELDS)) | st.text(max_size=8), raw_values, max_size=4)
)
def test_parser_accepts_valid_values_or_names_the_field(values):
    try:
        params = StyleParams.from_mapping(values)
    except ParamError as err:
        assert err.field in values  # the error points at something the caller sent
        assert err.message and err.code in ("invalid_parameter", "limit_exceeded")
        return
    for f in dataclasses.fields(params):  # anything accepted is in range and finite
        value = getattr(params, f.name)
        meta = f.metadata
        if meta["kind"] in ("int", "float"):
            assert meta["lo"] <= value <= meta["hi"] and math.isfinite(value)
        if meta["choices"]:
            assert value in meta["choices"]
        if meta["kind"] == "floats":
            assert all(math.isfinite(v) for v in value) and math.isfinite(math.fsum(value))
        if meta["kind"] == "layers":
            assert all(isinstance(name, str) for name in value)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_integer_fields_round_trip_their_text_form(n):
    try:
        params = StyleParams.from_mapping({"steps": str(n)})
    except ParamError as err:
        assert not 1 <= n <= 10000 and err.field == "steps"
    else:
        assert params.steps == n and 1 <= n <= 10000


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_float_fields_reject_non_finite_and_out_of_range(x):
    try:
        params = StyleParams.from_mapping({"tv_weight": repr(x)})
    except ParamError as err:
        assert err.field == "tv_weight"
        assert not (math.isfinite(x) and 0 <= x <= 1e6)
    else:
        assert params.tv_weight == x
