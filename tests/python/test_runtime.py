"""kiln.runtime: scopes, isolation across threads and asyncio tasks, resolution order."""
import asyncio
import threading

import numpy as np
import pytest

import kiln
from kiln import runtime


def test_builtin_defaults_and_sources():
    s = runtime.current_settings()
    assert s.cuda_graph_strategy in ("disabled", "whole_graph_capture")
    assert s.sources["cuda_graph_strategy"] in ("builtin", "environment", "default")


def test_scope_sets_and_restores():
    before = runtime.current_settings().cuda_graph_strategy
    with runtime.cuda_graph_strategy("whole_graph_capture"):
        s = runtime.current_settings()
        assert s.cuda_graph_strategy == "whole_graph_capture"
        assert s.sources["cuda_graph_strategy"] == "scope"
        with runtime.cuda_graph_strategy("disabled"):
            assert runtime.current_settings().cuda_graph_strategy == "disabled"
        assert runtime.current_settings().cuda_graph_strategy == "whole_graph_capture"
    assert runtime.current_settings().cuda_graph_strategy == before


def test_scope_restores_when_exception_unwinds():
    before = runtime.current_settings().dynamic_shapes_kernel_specialization_strategy
    with pytest.raises(KeyError):
        with runtime.dynamic_shapes_kernel_strategy("eager"):
            with runtime.dynamic_shapes_kernel_strategy("none"):
                raise KeyError("boom")
    assert runtime.current_settings().dynamic_shapes_kernel_specialization_strategy == before


def test_invalid_names_list_valid_values():
    with pytest.raises(ValueError, match=r"invalid cuda_graph_strategy 'whole'; expected disabled\|whole_graph_capture"):
        runtime.cuda_graph_strategy("whole")
    with pytest.raises(ValueError, match=r"expected lazy\|eager\|none"):
        runtime.dynamic_shapes_kernel_strategy("sometimes")
    with pytest.raises(ValueError):
        runtime.RuntimeSettings(cuda_graph_strategy="bogus")


def test_decorator_form_sync_and_async():
    @runtime.cuda_graph_strategy("whole_graph_capture")
    def f():
        return runtime.current_settings().cuda_graph_strategy

    @runtime.dynamic_shapes_kernel_strategy("eager")
    async def g():
        await asyncio.sleep(0)
        return runtime.current_settings().dynamic_shapes_kernel_specialization_strategy

    assert f() == "whole_graph_capture"
    assert asyncio.run(g()) == "eager"
    assert runtime.current_settings().sources["cuda_graph_strategy"] != "scope"


def test_threads_see_only_their_own_scope():
    errors = []
    barrier = threading.Barrier(2)

    def worker(name):
        try:
            with runtime.cuda_graph_strategy(name):
                barrier.wait()
                for _ in range(2000):
                    if runtime.current_settings().cuda_graph_strategy != name:
                        errors.append(name)
                        return
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("disabled", "whole_graph_capture")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_asyncio_tasks_interleaving_on_one_loop_are_isolated():
    async def task(name, n):
        with runtime.dynamic_shapes_kernel_strategy(name):
            seen = []
            for _ in range(n):
                await asyncio.sleep(0)  # let the other tasks run inside their own scopes
                seen.append(runtime.current_settings().dynamic_shapes_kernel_specialization_strategy)
            return name, seen

    async def main():
        return await asyncio.gather(task("lazy", 50), task("eager", 50), task("none", 50))

    for name, seen in asyncio.run(main()):
        assert set(seen) == {name}


def test_process_defaults_apply_to_new_threads_and_scope_wins():
    runtime.set_multi_device_safe_mode(True)
    try:
        out = {}
        t = threading.Thread(target=lambda: out.update(s=runtime.current_settings()))
        t.start()
        t.join()
        assert out["s"].multi_device_safe_mode is True
        assert out["s"].sources["multi_device_safe_mode"] == "default"
        with runtime.multi_device_safe_mode(False):
            assert runtime.current_settings().multi_device_safe_mode is False
    finally:
        runtime.set_multi_device_safe_mode(False)


def test_runtime_cache_none_and_path(tmp_path):
    with runtime.runtime_cache(None):
        assert runtime.current_settings().runtime_cache is None
    with runtime.runtime_cache(tmp_path / "c.kcache"):
        assert runtime.current_settings().runtime_cache == str(tmp_path / "c.kcache")


def test_runtime_config_targets_modules_above_scopes(example_model):
    a = kiln.compile(str(example_model), shapes={"x": ((1, 16), (2, 16), (8, 16))})
    b = kiln.compile(str(example_model), shapes={"x": ((1, 16), (2, 16), (8, 16))})
    with runtime.cuda_graph_strategy("disabled"):
        with runtime.runtime_config([a, b], cuda_graph_strategy="whole_graph_capture"):
            sa = runtime.current_settings(a)
            assert sa.cuda_graph_strategy == "whole_graph_capture"
            assert sa.sources["cuda_graph_strategy"] == "engine"
            assert runtime.current_settings(b).cuda_graph_strategy == "whole_graph_capture"
        assert runtime.current_settings(a).cuda_graph_strategy == "disabled"
    call = runtime.RuntimeSettings(cuda_graph_strategy="disabled")
    a.runtime_settings = runtime.RuntimeSettings(cuda_graph_strategy="whole_graph_capture")
    assert runtime.current_settings(a, call).sources["cuda_graph_strategy"] == "call"


def test_flipping_settings_per_call_reuses_two_contexts(example_model):
    mod = kiln.compile(str(example_model), shapes={"x": ((1, 16), (2, 16), (8, 16))})
    x = np.ones((2, 16), np.float32)
    ref = mod(x)
    for i in range(20):
        name = "whole_graph_capture" if i % 2 else "disabled"
        with runtime.cuda_graph_strategy(name):
            np.testing.assert_array_equal(mod(x), ref)
    st = mod.stats()
    assert st["contexts_created"] == 2
    assert st["contexts_reused"] == 19
