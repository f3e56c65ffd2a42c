"""Pod status and Events the process kubelet writes for a pod it cannot run (pure builders).

A real kubelet never reports a container Running that it could not start: the pod stays
unready and ``kubectl get pods`` shows the container's waiting reason (``ErrImagePull``,
``CrashLoopBackOff``). kwok marks every pod Running, so for a pod with no local program the
process kubelet takes that back the same way: Ready and ContainersReady False, the container
waiting with reason ``NotRunLocally`` and a message saying why, and one Warning Event.
"""

from __future__ import annotations

from sloserve_dev.devcluster.kubeapi import JsonObj

NOT_RUN_REASON = "NotRunLocally"
COMPONENT = "process-kubelet"


def not_run_status(container: str, image: str, reason: str, message: str, now: str) -> JsonObj:
    """Strategic-merge patch of ``pods/status``: unready, the container waiting (not running)."""
    conditions = [
        {
            "type": kind,
            "status": "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": now,
        }
        for kind in ("Ready", "ContainersReady")
    ]
    state = {"running": None, "waiting": {"reason": reason, "message": message}}
    return {
        "status": {
            "conditions": conditions,
            "containerStatuses": [
                {
                    "name": container,
                    "image": image,
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": state,
                }
            ],
        }
    }


def not_run_event(pod: JsonObj, reason: str, message: str, now: str) -> JsonObj:
    """A core/v1 Warning Event on the pod (what ``kubectl describe pod`` lists)."""
    meta = pod["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid", ""),
        },
        "type": "Warning",
        "reason": reason,
        "message": message,
        "source": {"component": COMPONENT, "host": pod.get("spec", {}).get("nodeName", "")},
        "reportingComponent": COMPONENT,
        "reportingInstance": pod.get("spec", {}).get("nodeName", ""),
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def crashed_status(
    container: str, exit_code: int | None, restarts: int, backoff_s: float, log: str, now: str
) -> JsonObj:
    """The container exited and waits to be restarted: ``CrashLoopBackOff``, as a kubelet says."""
    message = f"back-off {backoff_s:.0f}s restarting the exited process; its log: {log}"
    return {
        "status": {
            "containerStatuses": [
                {
                    "name": container,
                    "ready": False,
                    "started": False,
                    "restartCount": restarts,
                    "state": {
                        "running": None,
                        "waiting": {"reason": "CrashLoopBackOff", "message": message},
                    },
                    "lastState": {
                        "terminated": {
                            "exitCode": exit_code if exit_code is not None else -1,
                            "reason": "Error" if exit_code else "Completed",
                            "finishedAt": now,
                        }
                    },
                }
            ]
        }
    }


def restarted_status(container: str, restarts: int, now: str) -> JsonObj:
    """The container's process runs again (after a crash): running, restart counted."""
    return {
        "status": {
            "containerStatuses": [
                {
                    "name": container,
                    "started": True,
                    "restartCount": restarts,
                    "state": {"waiting": None, "running": {"startedAt": now}},
                }
            ]
        }
    }
