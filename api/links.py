"""OpenAPI links: which call a response leads to next (report an event -> read it, dispatch it, the team
accepts -> arrives -> resolves). Clients and generators (schemathesis's stateful run in the suite) follow
them; each names its target by path and method (``operationRef``), so renaming a handler breaks nothing.
"""

from __future__ import annotations


def link(method: str, path: str, description: str, **parameters: str) -> dict:
    """A Link Object to ``method path`` with its path parameters taken from the response (runtime expressions)."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {"operationRef": f"#/paths/{pointer}/{method.lower()}", "description": description,
            "parameters": parameters}


def _assignment_links(expr: str, *actions: str) -> dict[str, dict]:
    names = {"accept": "AcceptOffer", "decline": "DeclineOffer", "arrive": "Arrive", "resolve": "Resolve",
             "hand-up": "HandUp"}
    out = {"GetAssignment": link("GET", "/v1/assignments/{assignment_id}", "the assignment", assignment_id=expr)}
    for a in actions:
        out[names[a]] = link("POST", f"/v1/assignments/{{assignment_id}}/{a}", f"{a} the assignment",
                             assignment_id=expr)
    return out


def _event_links(expr: str) -> dict[str, dict]:
    return {
        "GetEvent": link("GET", "/v1/events/{event_id}", "the event", event_id=expr),
        "EventHistory": link("GET", "/v1/events/{event_id}/history", "its audit trail", event_id=expr),
        "DispatchEvent": link("POST", "/v1/events/{event_id}/dispatch", "offer it to the nearest team", event_id=expr),
        "TransitionEvent": link("POST", "/v1/events/{event_id}/transitions", "move it along its lifecycle",
                                event_id=expr),
        "EscalateEvent": link("POST", "/v1/events/{event_id}/escalate", "one rung up its ladder", event_id=expr),
        "DashboardEvent": link("GET", "/dashboard/api/events/{event_id}", "the screen's drill-down", event_id=expr),
    }


#: POST /v1/events: the event made, and the offer dispatch made (if any)
INTAKE = {**_event_links("$response.body#/event/id"),
          **_assignment_links("$response.body#/dispatch/assignment_id", "accept", "decline", "hand-up")}
#: POST /v1/events/{id}/dispatch: the offer made
DISPATCH = _assignment_links("$response.body#/assignment_id", "accept", "decline", "hand-up")
#: POST /v1/assignments/{id}/<action>: what the team can do next
RESPOND = {
    "accept": _assignment_links("$request.path.assignment_id", "arrive", "resolve", "hand-up"),
    "arrive": _assignment_links("$request.path.assignment_id", "resolve", "hand-up"),
    "decline": _assignment_links("$response.body#/dispatch/assignment_id", "accept", "decline"),
    "resolve": _event_links("$response.body#/event/id"),
    "hand_up": _event_links("$response.body#/event/id"),
}
