"""What the tests need from the machine, and what a missing piece does: skip, or fail under CI.

Tests that need root, network namespaces or a Debian tool (sshd, socat, ser2net, gcc, make,
qemu-system-arm, arm-none-eabi-gcc, ip) say so with ``require(condition, why)`` inside the test
or fixture, or with the ``needs(condition, why)`` mark on a test or module. On a developer's
machine a missing piece skips the test, with ``why`` naming what to install. With ``CI=true`` it
FAILS instead: .ci/run runs where tests/setup.sh installed everything as root, so a skip there
means a part of the suite silently stopped running (37 SSH tests once did, for want of root).

The ``needs`` mark is checked before any fixture is set up (the hook below), so a test that needs
root fails or skips with its reason, not with useradd's error from the SSH lab's fixture.
"""

from __future__ import annotations

import os
import shutil

import pytest

CI = os.environ.get("CI", "").strip().lower() in ("true", "1")

ROOT_WHY = "the SSH lab creates a user, network namespaces and sshd servers: run the tests as root"
NETNS_WHY = "needs network namespaces (root and `ip` from iproute2; HARNESS_TEST_NO_NETNS unset)"


def require(condition: bool, why: str) -> None:
    """Go on if ``condition`` holds; else skip the test (``why`` says what is missing), or fail
    it when the environment variable CI is true, where nothing may be missing."""
    if condition:
        return
    if CI:
        pytest.fail(f"{why} -- CI=true, where tests/setup.sh must have provided it", pytrace=False)
    pytest.skip(why)


def needs(condition: bool, why: str) -> pytest.MarkDecorator:
    """A mark for a test, class or module (``pytestmark``): ``require(condition, why)`` before setup."""
    return pytest.mark.needs(condition, why)


def is_root() -> bool:
    return os.geteuid() == 0


def have(*tools: str) -> bool:
    """Every one of ``tools`` is an executable on PATH."""
    return all(shutil.which(tool) is not None for tool in tools)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(condition, why): skip, or fail under CI=true, unless condition")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        require(*mark.args)
