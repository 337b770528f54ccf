"""Policy YAML: valid files load, every problem is a PolicyError naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbo.decisioning.policy import Policy, load_policy
from nbo.errors import PolicyError

VALID = """
slots: 4
contact:
  period_days: 14
  max_offers: {email: 2, app: 6}
  cooldown_days: 21
  suppress_after_ignored: null
diversity:
  max_per_category: 2
  new_product_share: 0.25
exploration:
  share: 0.1
tracks:
  onboarding_campaigns: [WELCOME]
campaigns:
  SPRING:
    weight: 1.5
    max_redemptions: 250
    channels: [app]
offers:
  SPRING-1: {boost: 0.5}
excluded_members: [7, 9]
seed: 3
"""


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_policy(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, VALID))
    assert policy.slots == 4
    assert policy.contact.max_offers == {"email": 2, "app": 6}
    assert policy.contact.suppress_after_ignored is None
    assert policy.contact.cooldown_days == 21
    assert policy.diversity.max_per_category == 2
    assert policy.new_slots() == 1  # floor(0.25 × 4)
    assert policy.exploration.share == 0.1
    assert policy.tracks.onboarding_campaigns == ["WELCOME"]
    spring = policy.campaign("SPRING")
    assert (spring.weight, spring.max_redemptions, spring.channels) == (1.5, 250, ["app"])
    assert spring.is_set
    assert not policy.campaign("OTHER").is_set  # unnamed campaigns get the defaults
    assert policy.offer("SPRING-1").boost == 0.5
    assert policy.offer("SPRING-1").weight == 1.0
    assert policy.excluded_members == [7, 9]
    assert policy.seed == 3
    assert policy.economics == Policy().economics  # untouched sections keep their defaults


def test_empty_file_and_none_are_the_defaults(tmp_path: Path) -> None:
    assert load_policy(write(tmp_path, "")) == Policy()
    assert load_policy(write(tmp_path, "# nothing set yet\n")) == Policy()
    assert load_policy(None) == Policy()


@pytest.mark.parametrize(
    ("text", "names"),
    [
        # a typo must never silently switch a rule off
        ("contact:\n  cooldown_dys: 3\n", ["contact.cooldown_dys", "Extra inputs"]),
        ("campaigns:\n  SPRING:\n    max_budget: 3\n", ["campaigns.SPRING.max_budget"]),
        ("slots: many\n", ["slots"]),
        ("slots: 0\n", ["slots"]),
        ("diversity:\n  new_product_share: 1.5\n", ["diversity.new_product_share"]),
        ("contact:\n  max_offers: {sms: 2}\n", ["contact.max_offers", "'sms'"]),
        ("campaigns:\n  X:\n    channels: [fax]\n", ["campaigns.X.channels", "'fax'"]),
        ("economics:\n  contact_cost: {sms: 0.1}\n", ["economics.contact_cost", "'sms'"]),
    ],
)
def test_invalid_policy_names_the_file_and_the_field(
    tmp_path: Path, text: str, names: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    message = str(error.value)
    assert str(path) in message
    for name in names:
        assert name in message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("- slots: 3\n", "mapping"),
        ("just a sentence\n", "mapping"),
        ("slots: [3\n", "not valid YAML"),
        ("slots: 3\n  contact: {\n", "not valid YAML"),
    ],
)
def test_a_file_that_is_no_policy(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError, match=says) as error:
        load_policy(path)
    assert str(path) in str(error.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(PolicyError, match="not found") as error:
        load_policy(path)
    assert str(path) in str(error.value)


def test_channel_check() -> None:
    policy = Policy.model_validate(
        {
            "channels": ["email", "sms"],
            "contact": {"max_offers": {"sms": 1}},
            "economics": {"contact_cost": {"sms": 0.05}},
        }
    )
    assert policy.check_channel("sms") == "sms"
    with pytest.raises(PolicyError, match="'app'"):
        policy.check_channel("app")


def test_own_channels_need_no_other_settings() -> None:
    policy = Policy.model_validate({"channels": ["email", "sms"]})
    assert policy.check_channel("sms") == "sms"
    with pytest.raises(ValueError, match="unknown channel"):
        Policy.model_validate({"channels": ["email"], "contact": {"max_offers": {"sms": 1}}})
