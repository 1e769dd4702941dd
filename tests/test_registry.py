"""The one generic registry: exact get, one case-insensitive lookup with aliases,
duplicates and clashing spellings refused, did-you-mean on a typo."""

from __future__ import annotations

import pytest

from sslinv.errors import UnknownNameError
from sslinv.registry import Registry, fold


def make() -> Registry[int]:
    reg: Registry[int] = Registry("dataset", hint="See them with: sslinv fetch-data --list")
    reg.register("leeds_sports_pose", 1, aliases=("lsp",))
    reg.register("ALOI-viewpoint", 2)
    reg.register("cifar10", 3)
    return reg


def test_lookup_folds_case_and_separators_and_follows_aliases() -> None:
    reg = make()
    assert fold(" Leeds-Sports_Pose ") == "leedssportspose"
    assert reg.lookup("LeedsSportsPose") == 1 and reg.key("LSP") == "leeds_sports_pose"
    assert reg.lookup("aloi_VIEWPOINT") == 2 and reg.lookup("CIFAR-10") == 3
    with pytest.raises(UnknownNameError):
        reg.get("LeedsSportsPose")  # get is exact: what a result file or a cache key holds


def test_unknown_name_suggests_and_hints() -> None:
    with pytest.raises(UnknownNameError, match=r"Unknown dataset 'cifar11'\. Did you mean 'cifar10'\?.*"
                                               r"See them with: sslinv fetch-data --list"):
        make().lookup("cifar11")


def test_duplicates_and_clashing_spellings_are_refused() -> None:
    reg = make()
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("cifar10", 4)
    with pytest.raises(ValueError, match="already taken by 'cifar10'"):
        reg.register("CIFAR_10", 4)
    with pytest.raises(ValueError, match="already taken"):
        reg.alias("lsp", "cifar10")
    assert reg.names() == ["leeds_sports_pose", "ALOI-viewpoint", "cifar10"]
