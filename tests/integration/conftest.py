"""Fixtures for Plateau's integration tests: real `plateau serve` processes on free ports, each on
its own temporary data directory initialised with `plateau init`.

- plateau_bin       (session)  path of the daemon; skips the tests when there is none.
- server            (module)   a running server on 127.0.0.1 shared by a module's tests, with
                               .admin_token (an admin API token made with the CLI).
- fresh_server      (function) the same, for a test that needs a server of its own.
- server6           (module)   the same on [::1]; skipped without an IPv6 loopback.
- plateau_factory   (function) makes Plateau instances with custom options:
                               plateau_factory.new(host=..., extra_args=[...], start=False, init=True)

Every server is stopped with SIGTERM at teardown; the teardown fails when the exit code is not 0,
when its stderr has a sanitizer report, or when a password or token the tests used appears in it.
"""

import pytest

from plateau_helpers import Plateau, has_ipv6_loopback, plateau_binary


@pytest.fixture(scope="session")
def plateau_bin():
    path, reason = plateau_binary()
    if path is None:
        pytest.skip(reason)
    return path


class PlateauFactory:
    def __init__(self, binary, mktemp):
        self.binary = binary
        self.mktemp = mktemp
        self.instances = []

    def new(self, host="127.0.0.1", extra_args=(), init=True, start=True, admin_token=True):
        p = Plateau(self.binary, self.mktemp("plateau"), host=host, extra_args=extra_args)
        self.instances.append(p)
        if init:
            p.init()
        if start:
            p.start()
        if init and admin_token:
            p.admin_token = p.create_token("region", "admin")
        return p

    def close(self):
        problems = []
        for p in self.instances:
            problems += [f"{p.data}: {msg}" for msg in p.close()]
        if problems:
            pytest.fail("server teardown:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def _module_factory(plateau_bin, tmp_path_factory):
    factory = PlateauFactory(plateau_bin, lambda name: tmp_path_factory.mktemp(name))
    yield factory
    factory.close()


@pytest.fixture
def plateau_factory(plateau_bin, tmp_path_factory):
    factory = PlateauFactory(plateau_bin, lambda name: tmp_path_factory.mktemp(name))
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def server(_module_factory):
    return _module_factory.new()


@pytest.fixture
def fresh_server(plateau_factory):
    return plateau_factory.new()


@pytest.fixture(scope="module")
def server6(_module_factory):
    if not has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1)")
    return _module_factory.new(host="::1")
