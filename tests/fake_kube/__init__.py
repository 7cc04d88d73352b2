"""A stand-in Kubernetes API server for the suite's own tests (not Kubernetes)."""

from tests.fake_kube.server import UNSCHEDULABLE, FakeKube, ReplicaEvent, Script

__all__ = ["UNSCHEDULABLE", "FakeKube", "ReplicaEvent", "Script"]
