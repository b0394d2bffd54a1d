"""The backend's settings are defined once; the names, parsing and errors derive from it."""
import inspect

import pytest

from illada_eval import settings as S
from illada_eval.adapter import DiffusionLM, model_arg_names
from illada_eval.model.dream_sampler import DREAM_ALGS
from illada_eval.model.kv_cache import KV_CACHE_MODES


def test_settings_classes_have_one_field_per_definition_with_its_default():
    for cls, group in ((S.ScoringSettings, S.SCORING), (S.GenerationSettings, S.GENERATION)):
        made = cls()
        assert [s.name for s in group] == list(made.__dataclass_fields__)
        for setting in group:
            assert getattr(made, setting.name) == setting.default, setting.name


def test_values_are_parsed_by_their_definition():
    made = S.GenerationSettings(gen_length="64", temperature=1, variable_length="false", threshold="0.9")
    assert (made.gen_length, made.temperature, made.variable_length, made.threshold) == (64, 1.0, False, 0.9)
    assert isinstance(made.temperature, float)
    assert S.GenerationSettings(steps="None").steps is None
    with pytest.raises(ValueError, match="gen_length must be an integer >= 1, got 2.5"):
        S.GenerationSettings(gen_length=2.5)
    with pytest.raises(ValueError, match="remasking must be one of low_confidence, random, origin, maskgit_plus, topk_margin, entropy, got 'low' "
                                         "\\(did you mean 'low_confidence'\\?\\)"):
        S.GenerationSettings(remasking="low")
    with pytest.raises(ValueError, match="mc_num needs a value"):
        S.ScoringSettings(mc_num=None)


def test_the_backend_takes_every_setting_and_its_own_arguments():
    own = [p for p in inspect.signature(DiffusionLM.__init__).parameters if p not in ("self", "settings")]
    assert model_arg_names() == (*own, *S.BY_NAME)
    assert S.SCORING_KEYS == ("scoring", "mc_num", "mc_batch_size", "cfg_scale", "greedy", "greedy_rule",
                              "official_numerics")


def test_settings_both_sides_read_are_one_definition_listed_once():
    for name in ("cfg_scale", "official_numerics"):
        (scoring,) = [s for s in S.SCORING if s.name == name]
        (generation,) = [s for s in S.GENERATION if s.name == name]
        assert scoring is generation, name
        assert S.settings_help().count(f"  {name}=") == 1, name


def test_kv_cache_modes_are_the_samplers():
    assert S.BY_NAME["kv_cache"].choices == KV_CACHE_MODES


def test_dream_algs_are_dreams_samplers():
    assert S.DREAM_ALGS == DREAM_ALGS
    with pytest.raises(ValueError, match="Dream's sampler, which has no kv_cache"):
        S.GenerationSettings(remasking="entropy", kv_cache="dual")


def test_keep_text_after_eos_needs_fixed_length_and_llada_sampler():
    made = S.GenerationSettings(keep_text_after_eos="true", variable_length="false")
    assert (made.keep_text_after_eos, made.variable_length) == (True, False)
    with pytest.raises(ValueError, match="variable_length stops decoding at the first EOS: set variable_length=false"):
        S.GenerationSettings(keep_text_after_eos=True)  # variable length is the default
    with pytest.raises(ValueError, match="Dream's sampler, which has no .*keep_text_after_eos"):
        S.GenerationSettings(remasking="entropy", keep_text_after_eos=True, variable_length=False)


def test_diffusion_generation_keys_are_the_sampler_settings_lm_eval_does_not_know():
    assert set(S.DIFFUSION_GENERATION_KEYS) == {s.name for s in S.GENERATION} - {"gen_length", "temperature"}


def test_unknown_keys_get_the_closest_name():
    with pytest.raises(ValueError, match="x: unknown keys 'mc_nun' \\(did you mean 'mc_num'\\?\\), 'zzz'; the keys are"):
        S.parse_settings({"mc_nun": 1, "zzz": 2}, S.SCORING_KEYS, "x")
    assert S.parse_settings({"mc_num": "8", "other": "kept"}, (*S.SCORING_KEYS, "other"), "x") == {"mc_num": 8, "other": "kept"}


def test_the_help_lists_every_setting_with_its_default():
    text = S.settings_help()
    for setting in S.BY_NAME.values():
        assert f"  {setting.name}={setting.default}" in text
