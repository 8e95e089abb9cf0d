#!/usr/bin/env python3
"""harness prefix timer: times Invoke of several models (a model's prefixes) in interleaved rounds.

Runs on the board with only Python >= 3.8, numpy and one TFLite runtime; never imports harness.
It borrows the runtime choice, interpreter creation and board description from tflite_agent.py,
whose path the host passes (it is staged separately):

    python3 prefix_timer.py --agent /path/tflite_agent.py --threads 1 --runtime auto --xnnpack off \
        --rounds 15 --min-time 0.005 --slices 5 --seed 0 [--lifeline [--heartbeat-timeout S]] MODEL ...

All models must take the same inputs (prefixes of one model do); one random input set (seeded)
is set once in each interpreter. Writes JSON lines on stdout, each with "v": 1 and "type":

    hello    agent, agent_version, board, runtime {name, version}, clock, emulated: false
    models   list of {path, init_ns, inputs, outputs}
    plan     rounds, slices, per_slice (Invoke samples per model per slice), min_time_s, threads,
             xnnpack, order
    round    round (0-based), ns: per model position, the list of its Invoke times in this round
             (integer ns, perf_counter_ns), in the order they were taken; cpu_ns: the same
             Invokes' thread CPU time (thread_time_ns; complete only with --threads 1)
    summary  rounds, wall_ns
    error    code, message, file

Calibration Invokes and a warm-up round (not reported) precede the rounds. Within a round the
models take turns in slices, in forward then reverse order, so drift and bursts of load hit every
model alike. Timing happens here, on the board.
"""

import argparse
import importlib.util
import os
import sys
import time

TIMER_VERSION = "1.0"
clock = time.perf_counter_ns
# CPU time of this thread: Invoke's own work without the time the OS gave to other processes.
# It covers the whole Invoke only when the runtime computes on the calling thread (threads = 1).
cpu_clock = time.thread_time_ns


def load_agent(path):
    """tflite_agent.py as a module, from where the host staged it (or beside this file)."""
    if not path:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tflite_agent.py")
    spec = importlib.util.spec_from_file_location("tflite_agent", path)
    if spec is None or spec.loader is None:
        raise ImportError("cannot load tflite_agent from %s" % path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Args(object):
    """What tflite_agent.create_interpreter reads from its argparse namespace."""

    def __init__(self, model, threads, xnnpack):
        self.model = model
        self.threads = threads
        self.xnnpack = xnnpack


def time_rounds(agent, interpreters, args):
    """Each round gives every model ``min_time`` of Invoke samples, spread over ``slices`` slices.

    Within a round the models take turns slice by slice (order reversed every slice), so a burst
    of load on the board hits all models about equally and cancels in the paired differences.
    """
    typical = []
    for it in interpreters:  # calibration: best of 3 Invokes per model, not reported
        best = None
        for _ in range(3):
            t0 = clock()
            it.invoke()
            elapsed = clock() - t0
            best = elapsed if best is None else min(best, elapsed)
        typical.append(best)
    slice_ns = args.min_time * 1e9 / args.slices
    per_slice = [max(args.min_per_slice, min(1000, int(slice_ns // max(t, 1)))) for t in typical]
    forward = list(range(len(interpreters)))
    agent.emit("plan", rounds=args.rounds, slices=args.slices, per_slice=per_slice, min_time_s=args.min_time,
               threads=args.threads, xnnpack=args.xnnpack == "on",
               order="models take turns per slice, order reversed every slice")
    for r in range(-1, args.rounds):  # round -1 is a warm-up at the calibrated length, not reported
        ns = [[] for _ in interpreters]
        cpu = [[] for _ in interpreters]
        for s in range(args.slices):
            for k in (forward if (r + s) % 2 == 0 else forward[::-1]):
                invoke, samples, cpu_samples = interpreters[k].invoke, ns[k], cpu[k]
                for _ in range(per_slice[k]):
                    c0 = cpu_clock()
                    t0 = clock()
                    invoke()
                    t1 = clock()
                    cpu_samples.append(cpu_clock() - c0)
                    samples.append(t1 - t0)
        if r >= 0:
            agent.emit("round", round=r, ns=ns, cpu_ns=cpu)


def run(agent, args):
    try:
        import numpy as np
    except ImportError:
        raise agent.AgentFailure("runtime_missing", "numpy is not installed for %s" % sys.executable)
    name, interpreter_cls, resolver = agent.pick_runtime(args.runtime)
    agent.emit("hello", agent="prefix_timer", agent_version=TIMER_VERSION, board=agent.board_info(),
               runtime={"name": name, "version": agent._version_of(name)}, clock=agent._clock_info(),
               emulated=False)
    rng = np.random.default_rng(args.seed)
    interpreters, described, inputs = [], [], None
    for path in args.models:
        t0 = clock()
        it, _, _ = agent.create_interpreter(Args(path, args.threads, args.xnnpack), interpreter_cls, resolver)
        init_ns = clock() - t0
        details = it.get_input_details()
        if inputs is None:
            inputs = [agent.random_input(d, rng, np) for d in details]
        if len(details) != len(inputs):
            raise agent.AgentFailure("bad_model", "%s has %d inputs, the first model %d: not prefixes of "
                                     "one model" % (os.path.basename(path), len(details), len(inputs)), path)
        for d, value in zip(details, inputs):
            it.set_tensor(d["index"], value)
        interpreters.append(it)
        described.append({"path": os.path.basename(path), "init_ns": init_ns,
                          "inputs": agent._tensor_details(details),
                          "outputs": agent._tensor_details(it.get_output_details())})
    agent.emit("models", models=described)
    t0 = clock()
    time_rounds(agent, interpreters, args)
    agent.emit("summary", rounds=args.rounds, wall_ns=clock() - t0)


def parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--agent", help="path of tflite_agent.py (default: beside this file)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runtime", default="auto")
    p.add_argument("--xnnpack", default="off", choices=("on", "off"))
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--min-time", type=float, default=0.005,
                   help="seconds of Invoke samples per model per round (at least one sample per slice)")
    p.add_argument("--slices", type=int, default=5, help="turns per round in which the models alternate")
    p.add_argument("--min-per-slice", type=int, default=3,
                   help="Invokes per model per turn at least: a turn's median then shrugs off one "
                        "Invoke the OS interrupted")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lifeline", action="store_true", help="exit when stdin closes (set by the host)")
    p.add_argument("--heartbeat-timeout", type=float, default=0.0,
                   help="with --lifeline: also exit after this many seconds without a byte on stdin")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        agent = load_agent(args.agent)
    except Exception as exc:
        sys.stdout.write('{"v":1,"type":"error","code":"usage","message":%s,"file":null}\n'
                         % _json_string("cannot load tflite_agent.py: %s" % exc))
        return 2
    try:
        if args.lifeline:
            try:
                agent.start_lifeline(args.heartbeat_timeout)
            except TypeError:  # a tflite_agent.py from before heartbeats: stdin EOF only
                agent.start_lifeline()
        run(agent, args)
        return 0
    except agent.AgentFailure as exc:
        agent.emit("error", code=exc.code, message=exc.message,
                   file=os.path.basename(exc.file) if exc.file else None)
        return 1
    except KeyboardInterrupt:
        agent.emit("error", code="interrupted", message="interrupted", file=None)
        return 130
    except BrokenPipeError:
        return 3
    except Exception as exc:
        import traceback
        traceback.print_exc()
        agent.emit("error", code="internal", message="%s: %s" % (type(exc).__name__, exc), file=None)
        return 1


def _json_string(text):
    import json
    return json.dumps(text)


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # the lifeline thread may be blocked reading stdin
