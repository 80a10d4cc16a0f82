"""Locust load shape for soak tests: ramp, hold, spike, recover (see ``tritonize.loadtest.soak``).

Locust uses a shape class whenever one is in a loaded locustfile, so this one lives apart and
``tritonize loadtest --shape soak`` adds it: ``locust -f loadtest/locustfile.py,loadtest/soak_shape.py``.
By hand:

    locust -f loadtest/locustfile.py,loadtest/soak_shape.py --headless --host http://127.0.0.1:8000 \\
        --soak-users 8 --soak-ramp 10 --soak-hold 60 --soak-spike-users 32 --soak-spike 10 TritonGrpcUser
"""

from __future__ import annotations

from locust import LoadTestShape, events

from tritonize.loadtest.soak import SoakPlan


@events.init_command_line_parser.add_listener
def _add_arguments(parser) -> None:
    group = parser.add_argument_group("soak", "ramp / hold / spike / recover load shape")
    group.add_argument("--soak-users", type=int, default=8, help="users during ramp target, hold and recover")
    group.add_argument("--soak-ramp", type=float, default=10.0, help="seconds to reach --soak-users")
    group.add_argument("--soak-hold", type=float, default=60.0, help="seconds at --soak-users")
    group.add_argument("--soak-spike-users", type=int, default=0, help="users during the spike (0: 4x)")
    group.add_argument("--soak-spike", type=float, default=10.0, help="seconds of spike")
    group.add_argument("--soak-recover", type=float, default=10.0, help="seconds back at --soak-users")


class SoakShape(LoadTestShape):
    """Follows :class:`SoakPlan`; the run ends when the plan's last phase does."""

    _plan: SoakPlan | None = None

    def plan(self) -> SoakPlan:
        if self._plan is None:
            options = self.runner.environment.parsed_options
            self._plan = SoakPlan(
                users=options.soak_users,
                ramp_s=options.soak_ramp,
                hold_s=options.soak_hold,
                spike_users=options.soak_spike_users,
                spike_s=options.soak_spike,
                recover_s=options.soak_recover,
            )
        return self._plan

    def tick(self) -> tuple[int, float] | None:
        return self.plan().tick(self.get_run_time())
