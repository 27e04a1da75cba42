import pytest

from rollout.core import sizes
from rollout.core.errors import UsageError
from rollout.core.sizes import Size


@pytest.mark.parametrize(
    "value,size",
    [(1, Size(1)), ("2", Size(2)), (" 3 ", Size(3)), ("25%", Size(25, True)), ("100%", Size(100, True)), ("1%", Size(1, True)),
     (Size(4), Size(4))],
)
def test_batch_sizes_are_counts_or_percentages(value, size):
    assert sizes.batch(value) == size


@pytest.mark.parametrize("value", [0, "0", "0%", "101%", -1, "-1", 1.5, "1.5", True, None, "", "lots", "2 ; rm -rf /", "10 %", [1, 2]])
def test_a_batch_size_is_never_anything_else(value):
    with pytest.raises(ValueError, match="positive count"):
        sizes.batch(value)


@pytest.mark.parametrize("value,size", [(0, Size(0)), ("0%", Size(0, True)), ("2", Size(2)), ("100%", Size(100, True))])
def test_failure_budgets_may_be_zero(value, size):
    assert sizes.failures(value) == size


@pytest.mark.parametrize("value", ["plenty", "101%", -1, False, 0.5])
def test_malformed_failure_budgets_are_refused(value):
    with pytest.raises(ValueError, match="count like 0 or 2"):
        sizes.failures(value)


@pytest.mark.parametrize(
    "size,total,hosts",
    [(Size(10, True), 25, 2), (Size(50, True), 3, 1), (Size(0, True), 100, 0), (Size(100, True), 7, 7), (Size(3), 2, 3)],
)
def test_a_size_is_a_count_or_a_percentage_rounded_down(size, total, hosts):
    assert size.of(total) == hosts


@pytest.mark.parametrize("size,total,hosts", [(Size(1, True), 4, 1), (Size(10), 4, 4), (Size(2), 0, 1)])
def test_a_batch_holds_at_least_one_host_and_at_most_all(size, total, hosts):
    assert sizes.batch_hosts(size, total) == hosts


def test_the_batch_flag_is_blamed_on_the_flag():
    assert sizes.batch_flag(None) is None
    with pytest.raises(UsageError, match=r"^--batch='lots' is not valid: give a positive count"):
        sizes.batch_flag("lots")


@pytest.mark.parametrize("size,text", [(Size(3), "3"), (Size(25, True), "25%")])
def test_a_size_reads_as_written(size, text):
    assert str(size) == text and sizes.batch(text) == size
