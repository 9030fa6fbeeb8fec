"""The gRPC servicer: protos in, plain serving.types to the ranking service, protos back out.

Nothing else happens here. Validation and ranking are the service's job; auth, load control, error
mapping, metrics and logs are the guard's (serving.grpc.interceptors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from serving.grpc import proto
from serving.grpc.interceptors import current_request_id
from serving.ports import Ranking
from serving.types import RankQuery, RankResult, TrackEvent, TrackResult

if TYPE_CHECKING:
    from serving.grpc._proto.setlist.v1 import ranking_pb2 as pb

# The generated modules are reached through serving.grpc.proto at call time, not imported here, so this
# module imports cleanly before `make protos` ran (the test session generates them in a fixture).


def to_query(request: pb.RankRequest, request_id: str) -> RankQuery:
    return RankQuery(
        user_id=request.user_id,
        k=request.k,
        context=dict(request.context),
        exclude_item_ids=tuple(request.exclude_item_ids),
        explain=request.explain,
        request_id=request_id,
        candidate_item_ids=tuple(request.candidate_item_ids) if request.candidate_item_ids else (),
    )


def from_result(result: RankResult, request_id: str) -> pb.RankResponse:
    m = proto.ranking_pb2
    response = m.RankResponse(
        items=[m.RankedItem(item_id=i.item_id, score=i.score, reasons=i.reasons) for i in result.items],
        model_version=result.model_version,
        cache_hit=result.cache_hit,
        degraded=result.degraded,
        arm=result.arm,
        request_id=request_id,
        ignored_context_keys=result.ignored_context_keys,
    )
    if result.unknown_item_ids:  # a caller's slate only: the common answer builds no empty field
        response.unknown_item_ids.extend(result.unknown_item_ids)
    return response


def to_event(event: pb.Event) -> TrackEvent:
    return TrackEvent(
        event_id=event.event_id,
        user_id=event.user_id,
        item_id=event.item_id,
        type=event.type,
        timestamp_ms=event.timestamp_ms,
        session_id=event.session_id,
        context=dict(event.context),
        value=event.value if event.HasField("value") else None,
        query=event.query,
    )


def from_track(result: TrackResult, request_id: str) -> pb.TrackResponse:
    m = proto.ranking_pb2
    return m.TrackResponse(
        accepted=result.accepted,
        rejected=[m.Rejected(event_id=r.event_id, reason=r.reason, index=r.index) for r in result.rejected],
        request_id=request_id,
        sampled_out=result.sampled_out,
    )


class RankingServicer:
    """Implements setlist.v1.RankingService on top of any ``Ranking`` (the real service or a fake)."""

    def __init__(self, ranking: Ranking) -> None:
        self._ranking = ranking

    def Rank(self, request: pb.RankRequest, context: grpc.ServicerContext) -> pb.RankResponse:
        request_id = current_request_id.get()
        return from_result(self._ranking.rank(to_query(request, request_id)), request_id)

    def Track(self, request: pb.TrackRequest, context: grpc.ServicerContext) -> pb.TrackResponse:
        result = self._ranking.track([to_event(e) for e in request.events])
        return from_track(result, current_request_id.get())


def add_to_server(ranking: Ranking, server: grpc.Server) -> None:
    proto.ranking_pb2_grpc.add_RankingServiceServicer_to_server(RankingServicer(ranking), server)
