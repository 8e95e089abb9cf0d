#!/usr/bin/env python3
"""harness prefix timer: times Invoke of several models (a model's prefixes) in interleaved rounds.

Runs on the board with only Python >= 3.8, numpy and one TFLite runtime; never imports harness.
It borrows the runtime choice, interpreter creation and board description from tflite_agent.py,
whose path the host passes (it is staged separately):

    python3 prefix_timer.py --agent /path/tflite_agent.py --threads 1 --runtime auto --xnnpack off \
        --rounds 15 --min-time 0.005 --seed 0 [--lifeline] MODEL [MODEL ...]

All models must take the same inputs (prefixes of one model do); one random input set (seeded)
is set once in each interpreter. Writes JSON lines on stdout, each with "v": 1 and "type":

    hello    agent, agent_version, board, runtime {name, version}, clock, emulated: false
    models   list of {path, init_ns, inputs, outputs}
    plan     rounds, inner (Invoke samples per model per round), min_time_s, threads, xnnpack, order
    round    round (0-based), order (model positions in the order timed), ns: per model position,
             the list of its Invoke times (integer ns, perf_counter_ns) in this round
    summary  rounds, wall_ns
    error    code, message, file

A warm-up round (not reported) precedes the rounds. Rounds alternate forward and reverse order,
so slow drift (heat, frequency) hits every model alike. Timing happens here, on the board.
"""

import argparse
import importlib.util
import os
import sys
import time

TIMER_VERSION = "1.0"
clock = time.perf_counter_ns


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


def time_rounds(agent, np, interpreters, args):
    """Calibrate ``inner`` so one model's samples in a round last >= min_time, then the rounds."""
    slowest = 0
    for it in interpreters:  # warm-up round: also measures each model once
        t0 = clock()
        it.invoke()
        slowest = max(slowest, clock() - t0)
    inner = max(3, min(1000, int(args.min_time * 1e9 / max(slowest, 1)) + 1))
    order = list(range(len(interpreters)))
    agent.emit("plan", rounds=args.rounds, inner=inner, min_time_s=args.min_time, threads=args.threads,
               xnnpack=args.xnnpack == "on", order="alternating forward/reverse")
    for it in interpreters:  # warm-up round at the calibrated length, not reported
        for _ in range(inner):
            it.invoke()
    for r in range(args.rounds):
        seq = order if r % 2 == 0 else order[::-1]
        ns = [None] * len(interpreters)
        for k in seq:
            invoke = interpreters[k].invoke
            samples = []
            for _ in range(inner):
                t0 = clock()
                invoke()
                samples.append(clock() - t0)
            ns[k] = samples
        agent.emit("round", round=r, order=seq, ns=ns)


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
    time_rounds(agent, np, interpreters, args)
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
                   help="seconds each model's samples in one round last at least")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lifeline", action="store_true", help="exit when stdin closes (set by the host)")
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
