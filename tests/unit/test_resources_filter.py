"""The shared checks of every role's *_resources variable (plugins/filter/k8s_resources_problems.py):
Kubernetes quantities, known keys, limit >= request, each problem named under the variable."""
from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

SRC = Path(__file__).resolve().parents[2] / "plugins" / "filter" / "k8s_resources_problems.py"
SPEC = importlib.util.spec_from_file_location("unimon_resources_filter", SRC)
resources = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(resources)

QUANTITIES = [
    # (value, exact amount)
    ("100m", Fraction(1, 10)),
    ("0.5", Fraction(1, 2)),
    (".5", Fraction(1, 2)),
    ("2", 2),
    (2, 2),
    (0.25, Fraction(1, 4)),
    ("2Gi", 2 * 1024 ** 3),
    ("512Mi", 512 * 1024 ** 2),
    ("1.5Gi", 3 * 1024 ** 3 // 2),
    ("128Ki", 128 * 1024),
    ("1Ei", 1024 ** 6),
    ("512M", 512 * 10 ** 6),
    ("1k", 1000),
    ("1G", 10 ** 9),
    ("250u", Fraction(250, 10 ** 6)),
    ("5n", Fraction(5, 10 ** 9)),
    ("1e3", 1000),
    ("1E-3", Fraction(1, 1000)),
    ("+1", 1),
    ("-1", -1),
    (" 100m ", Fraction(1, 10)),
    ("0", 0),
]

NOT_QUANTITIES = ["lots", "", "1 Gi", "1gi", "1GB", "1KiB", "Gi", "1.2.3", "0x10", "1m2", "1e", True, False, None,
                  [1], {"cpu": 1}, float("nan"), float("inf")]


@pytest.mark.parametrize("value,amount", QUANTITIES, ids=[repr(q[0]) for q in QUANTITIES])
def test_quantity_is_read_exactly(value, amount):
    assert resources.parse_quantity(value) == amount


@pytest.mark.parametrize("value", NOT_QUANTITIES, ids=[repr(v) for v in NOT_QUANTITIES])
def test_not_a_quantity(value):
    assert resources.parse_quantity(value) is None


GOOD = [
    {},
    None,
    {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    {"requests": {"cpu": "500m"}, "limits": {"cpu": "0.5"}},  # equal, written differently
    {"requests": {"cpu": 1, "memory": 1073741824}, "limits": {"cpu": 2, "memory": "1Gi"}},
    {"requests": {"ephemeral-storage": "1Gi"}, "limits": {"ephemeral-storage": "2G"}},
    {"limits": {"cpu": "1", "memory": "2Gi"}},
    {"requests": {"memory": "1.5Gi"}},
    {"requests": None, "limits": {}},
]


@pytest.mark.parametrize("value", GOOD, ids=[repr(v) for v in GOOD])
def test_good_resources_have_no_problem(value):
    assert resources.resources_problems(value, "logging_store_resources") == []


BAD = [
    # (value, text every problem list must contain)
    ("lots", "logging_store_resources must be a mapping"),
    (["requests"], "logging_store_resources must be a mapping"),
    ({"request": {"cpu": "1"}}, "logging_store_resources has the unknown key 'request'"),
    ({"requests": {"cpus": "1"}}, "logging_store_resources.requests has the unknown resource 'cpus'"),
    ({"limits": {"gpu": "1"}}, "logging_store_resources.limits has the unknown resource 'gpu'"),
    ({"requests": "1"}, "logging_store_resources.requests must be a mapping"),
    ({"requests": {"cpu": "lots"}}, "logging_store_resources.requests.cpu is 'lots', not a Kubernetes quantity"),
    ({"limits": {"memory": "2GB"}}, "logging_store_resources.limits.memory is '2GB', not a Kubernetes quantity"),
    ({"limits": {"memory": True}}, "logging_store_resources.limits.memory is true, not a Kubernetes quantity"),
    ({"requests": {"cpu": "-100m"}}, "logging_store_resources.requests.cpu is '-100m': it must not be negative"),
    ({"limits": {"memory": "512m"}}, "logging_store_resources.limits.memory is '512m', a fraction of a byte"),
    ({"requests": {"ephemeral-storage": 0.5}}, "logging_store_resources.requests.ephemeral-storage is 0.5, a fraction"),
    ({"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}},
     "logging_store_resources.limits.memory ('1Gi') is below logging_store_resources.requests.memory ('2Gi')"),
    ({"requests": {"cpu": "1"}, "limits": {"cpu": "999m"}},
     "logging_store_resources.limits.cpu ('999m') is below logging_store_resources.requests.cpu ('1')"),
    ({"requests": {"memory": "1G"}, "limits": {"memory": "900Mi"}}, "limits.memory ('900Mi') is below"),
]


@pytest.mark.parametrize("value,needle", BAD, ids=[repr(b[0]) for b in BAD])
def test_bad_resources_are_named(value, needle):
    problems = resources.resources_problems(value, "logging_store_resources")
    assert len(problems) == 1, problems
    assert needle in problems[0]


def test_every_problem_is_reported():
    problems = resources.resources_problems(
        {"requests": {"cpu": "x", "memory": "2Gi"}, "limits": {"memory": "1Gi"}, "limit": {}}, "grafana_resources")
    assert len(problems) == 3, problems
    assert all("grafana_resources" in p for p in problems)


def test_unparsable_values_are_not_compared():
    """A bad request is reported once, as not a quantity, not again against its limit."""
    problems = resources.resources_problems({"requests": {"cpu": "x"}, "limits": {"cpu": "1"}}, "r")
    assert problems == ["r.requests.cpu is 'x', not a Kubernetes quantity (such as 100m, 0.5 or 2)"]


FILTER_VALUES = [("2Gi", 2147483648), ("100m", 0.1), (3, 3), ("1.5", 1.5)]


@pytest.mark.parametrize("value,number", FILTER_VALUES, ids=[repr(v[0]) for v in FILTER_VALUES])
def test_k8s_quantity_filter(value, number):
    assert resources.k8s_quantity(value) == number


JVM_SIZES = [("1g", 1024 ** 3), ("512m", 512 * 1024 ** 2), ("2G", 2 * 1024 ** 3), ("1024k", 1024 ** 2), ("1048576", 1048576),
             (4096, 4096)]


@pytest.mark.parametrize("value,size", JVM_SIZES, ids=[repr(v[0]) for v in JVM_SIZES])
def test_jvm_size(value, size):
    assert resources.jvm_size(value) == size


@pytest.mark.parametrize("func,value", [(resources.k8s_quantity, "lots"), (resources.k8s_quantity, None),
                                        (resources.jvm_size, "8gb"), (resources.jvm_size, "lots"), (resources.jvm_size, None),
                                        (resources.jvm_size, True)])
def test_filters_fail_with_a_message(func, value):
    with pytest.raises(AnsibleFilterError, match="not a"):
        func(value)


def test_filters_are_registered():
    assert set(resources.FilterModule().filters()) == {"k8s_resources_problems", "k8s_quantity", "jvm_size"}
