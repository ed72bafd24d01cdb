"""How pods come and go: replicas, shutdown, probes, rollout, spread, autoscaling, disruption."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from wsfleet_common import contract
from wsfleet_operator.durations import Duration, HpaPeriod, HpaWindow
from wsfleet_operator.model.base import HttpPath, _Spec


class Replicas(_Spec):
    """How many workload pods run. The HPA scales between min and max."""

    min: int = Field(default=3, ge=1, le=1000, description="Fewest pods. Must exceed disruption.minAvailable (I5).")
    max: int = Field(default=10, ge=1, le=1000, description="Most pods the HPA may scale to (I5: max >= min).")


class Shutdown(_Spec):
    """The graceful shutdown timeline: preStop, then SIGTERM and drain, then a buffer before SIGKILL."""

    pre_stop: Duration | None = Field(
        default=None,
        description=(
            "How long the pod stays up, unready, before SIGTERM, so the load balancer deregisters it. "
            "Provider default when omitted: 10s where the LB follows endpoints, longer for ALB and GCE."
        ),
    )
    pre_stop_action: Literal["http", "sleep"] = Field(
        default="http",
        description=(
            "http calls the workload's preStop endpoint, which turns the pod unready at once and answers after "
            "preStop; sleep uses the kubelet's native sleep action, for images that lack that endpoint."
        ),
    )
    drain: Duration = Field(
        default=30, description="How long the workload takes to move its clients away after SIGTERM."
    )
    buffer: Duration = Field(default=5, description="Slack between the end of the drain and SIGKILL.")
    termination_grace_period: Duration | None = Field(
        default=None,
        description="terminationGracePeriodSeconds. Derived as preStop + drain + buffer when omitted (I2).",
    )


class Probe(_Spec):
    """An HTTP probe of the workload."""

    path: HttpPath = Field(description="HTTP path.")
    period: Duration = Field(description="periodSeconds.")
    timeout: Duration = Field(default=2, description="timeoutSeconds; must be below period (I12).")
    failure_threshold: int = Field(default=3, ge=1, le=100, description="failureThreshold.")


class StartupProbe(Probe):
    """The startup probe. Its window (period x failureThreshold) must cover the startup budget (I8)."""

    path: HttpPath = Field(default=contract.STARTUP_PATH, description="HTTP path.")
    period: Duration = Field(default=5, description="periodSeconds.")
    failure_threshold: int = Field(default=12, ge=1, le=1000, description="failureThreshold.")
    budget: Duration = Field(default=60, description="The longest the workload is expected to take to start.")


class ReadinessProbe(Probe):
    """The readiness probe; the load balancer health check uses the same path and period."""

    path: HttpPath = Field(default=contract.READY_PATH, description="HTTP path.")
    period: Duration = Field(
        default=3,
        description=(
            "periodSeconds. preStop must cover (failureThreshold + 1) periods (I3): the kubelet's failed probes, "
            "then the load balancer following."
        ),
    )
    failure_threshold: int = Field(default=2, ge=1, le=100, description="failureThreshold.")


class LivenessProbe(Probe):
    """The liveness probe. It must not depend on Redis (I7)."""

    path: HttpPath = Field(default=contract.LIVE_PATH, description="HTTP path.")
    period: Duration = Field(default=10, description="periodSeconds.")


class Probes(_Spec):
    """Startup, readiness and liveness probes."""

    startup: StartupProbe = Field(default_factory=StartupProbe, description="Startup probe.")
    readiness: ReadinessProbe = Field(default_factory=ReadinessProbe, description="Readiness probe.")
    liveness: LivenessProbe = Field(default_factory=LivenessProbe, description="Liveness probe.")


class Rollout(_Spec):
    """The Deployment's rolling update. maxUnavailable must stay 0 (I6)."""

    max_surge: int = Field(default=1, ge=0, le=1000, description="Extra pods during a rollout (I6: at least 1).")
    max_unavailable: int = Field(
        default=0, ge=0, le=1000, description="Pods that may be missing during a rollout (I6: 0)."
    )


class TopologySpread(_Spec):
    """How pods spread across zones and nodes."""

    zone: Literal["ScheduleAnyway", "DoNotSchedule"] = Field(
        default="ScheduleAnyway",
        description="Zone spread. ScheduleAnyway lets replacements schedule during a zone outage.",
    )
    node: Literal["ScheduleAnyway", "DoNotSchedule"] = Field(default="ScheduleAnyway", description="Node spread.")
    max_skew: int = Field(default=1, ge=1, le=100, description="maxSkew for both constraints.")


class ScalingRule(_Spec):
    """One direction of HPA behaviour: at most percent% of pods per period, after a stabilisation window."""

    percent: int = Field(ge=1, le=1000, description="Largest change per period, in percent of current pods.")
    period: HpaPeriod = Field(description="Policy period (1s..30m).")
    stabilization: HpaWindow = Field(description="Stabilisation window (0s..1h).")


class Autoscaling(_Spec):
    """The HorizontalPodAutoscaler. While enabled it owns the replica count (I9)."""

    enabled: bool = Field(default=True, description="Render an HPA. Disabled: the Deployment runs replicas.min pods.")
    cpu: int = Field(default=70, ge=0, le=100, description="Target CPU utilisation, percent of requests; 0 disables.")
    memory: int = Field(
        default=80, ge=0, le=100, description="Target memory utilisation, percent of requests; 0 disables."
    )
    connections_per_pod: int | None = Field(
        default=None,
        ge=1,
        le=1000000,
        description="Target connections per pod (needs a custom metrics adapter serving wsfleet_connections).",
    )
    scale_up: ScalingRule = Field(
        default_factory=lambda: ScalingRule(percent=100, period="15s", stabilization="0s"),
        description="Scale-up: double at once by default.",
    )
    scale_down: ScalingRule = Field(
        default_factory=lambda: ScalingRule(percent=50, period="1m", stabilization="5m"),
        description="Scale-down: 5 minute stabilisation, at most 50% per minute, so reconnect waves stay small.",
    )


class Disruption(_Spec):
    """The PodDisruptionBudget."""

    min_available: int = Field(default=2, ge=0, le=1000, description="Pods that voluntary disruptions must leave (I5).")
