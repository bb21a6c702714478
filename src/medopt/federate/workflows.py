"""Round workflows for Flower's legacy ``DefaultWorkflow``: fit and evaluate with a reply timeout, and the hooks
that open and close a round record.

Why not Flower's own default fit/evaluate workflows: they wait for every reply forever; here a round stops waiting
after ``federate.round_timeout_s`` and the strategy aggregates what arrived (late or crashed clients are failures).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import flwr.compat.common.recorddict_compat as compat
from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.common import Code, ndarrays_to_parameters
from flwr.server import LegacyContext
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key
from flwr.serverapp import Grid

from medopt.federate.rounds import RoundRecorder

Workflow = Callable[[Grid, Context], None]


def _round_and_parameters(context: LegacyContext) -> tuple[int, Any]:
    current_round = cast(int, context.state.config_records[MAIN_CONFIGS_RECORD][Key.CURRENT_ROUND])
    record = context.state.array_records[MAIN_PARAMS_RECORD]
    return current_round, compat.arrayrecord_to_parameters(record, keep_input=True)


def _exchange(grid: Grid, instructions: list[tuple[Any, Any]], to_record: Callable[[Any], Any], message_type: str,
              current_round: int, timeout: float | None) -> tuple[dict[int, Any], list[Message], int]:
    """Send one instruction per client; returns (node -> proxy, replies, number of clients that never replied)."""
    proxies = {proxy.node_id: proxy for proxy, _ in instructions}
    messages = [Message(content=to_record(ins), dst_node_id=proxy.node_id, message_type=message_type,
                        group_id=str(current_round)) for proxy, ins in instructions]
    replies = list(grid.send_and_receive(messages, timeout=timeout))
    return proxies, replies, len(messages) - len(replies)


def _split(replies: list[Message], proxies: dict[int, Any], from_record: Callable[[Any], Any],
           missing: int) -> tuple[list[tuple[Any, Any]], list[Any]]:
    results: list[tuple[Any, Any]] = []
    failures: list[Any] = [TimeoutError("no reply within federate.round_timeout_s")] * missing
    for msg in replies:
        if not msg.has_content():
            failures.append(Exception(msg.error))
            continue
        res = from_record(msg.content)
        target = results if res.status.code == Code.OK else failures
        target.append((proxies[msg.metadata.src_node_id], res))
    return results, failures


def fit_workflow(timeout: float | None) -> Workflow:
    """One training round: instructions from the strategy, replies until ``timeout``, aggregation."""

    def run(grid: Grid, context: Context) -> None:
        ctx = cast(LegacyContext, context)
        current_round, parameters = _round_and_parameters(ctx)
        instructions = ctx.strategy.configure_fit(current_round, parameters, ctx.client_manager)
        if not instructions:
            return
        proxies, replies, missing = _exchange(grid, instructions, lambda ins: compat.fitins_to_recorddict(ins, True),
                                              MessageType.TRAIN, current_round, timeout)
        results, failures = _split(replies, proxies, lambda rd: compat.recorddict_to_fitres(rd, False), missing)
        new_parameters, metrics = ctx.strategy.aggregate_fit(current_round, results, failures)
        if new_parameters:
            ctx.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(new_parameters, True)
            ctx.history.add_metrics_distributed_fit(server_round=current_round, metrics=metrics)

    return run


def evaluate_workflow(timeout: float | None, recorder: RoundRecorder) -> Workflow:
    """Clients score the global model on their own test splits; then the round record is closed."""

    def run(grid: Grid, context: Context) -> None:
        ctx = cast(LegacyContext, context)
        current_round, parameters = _round_and_parameters(ctx)
        instructions = ctx.strategy.configure_evaluate(current_round, parameters, ctx.client_manager)
        if instructions:
            proxies, replies, missing = _exchange(grid, instructions,
                                                  lambda ins: compat.evaluateins_to_recorddict(ins, True),
                                                  MessageType.EVALUATE, current_round, timeout)
            results, failures = _split(replies, proxies, compat.recorddict_to_evaluateres, missing)
            loss, metrics = ctx.strategy.aggregate_evaluate(current_round, results, failures)
            if loss is not None:
                ctx.history.add_loss_distributed(server_round=current_round, loss=loss)
            if getattr(ctx.strategy, "refreshed", False):  # pooled BatchNorm statistics: the next round starts there
                ctx.strategy.refreshed = False
                refreshed = ndarrays_to_parameters(ctx.strategy.current)
                ctx.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(refreshed, True)
        recorder.finish()

    return run
