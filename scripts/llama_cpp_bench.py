"""llama.cpp (through llama-cpp-python) on the same measurement `aicoin bench inference` makes for
one stream: a given prompt (token ids), then a fixed number of greedy tokens with end-of-sequence
ignored. Prints one JSON object: TTFT, prefill and decode tokens/s (medians), peak RSS.

Usage: python llama_cpp_bench.py MODEL.gguf PROMPT_IDS_JSON TOKENS THREADS ROUNDS
"""

import json
import resource
import statistics
import sys
import time

from llama_cpp import Llama


def main() -> None:
    model, prompt_json, tokens, threads, rounds = sys.argv[1:6]
    prompt = json.loads(prompt_json)
    tokens, threads, rounds = int(tokens), int(threads), int(rounds)
    started = time.perf_counter()
    llm = Llama(
        model_path=model,
        n_ctx=len(prompt) + tokens + 16,
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    load_seconds = time.perf_counter() - started

    def run(ids: list[int], n: int) -> tuple[float, float]:
        llm.reset()  # no prefix reuse: every round reads the whole prompt
        begin = time.perf_counter()
        first = begin
        produced = 0
        for _ in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            produced += 1
            if produced == 1:
                first = time.perf_counter()
            if produced == n:
                break
        return first - begin, time.perf_counter() - first

    run(prompt[:16], 4)  # warm-up
    ttft, decode = [], []
    for _ in range(rounds):
        t, d = run(prompt, tokens)
        ttft.append(t)
        decode.append((tokens - 1) / d)
    ttft_median = statistics.median(ttft)
    print(
        json.dumps(
            {
                "engine": "llama.cpp (llama-cpp-python)",
                "threads": threads,
                "load_seconds": load_seconds,
                "ttft_seconds": ttft_median,
                "prefill_tokens_per_second": len(prompt) / ttft_median,
                "decode_tokens_per_second": statistics.median(decode),
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
