"""Equal-rate margins: seeds averaged, the baseline's envelope read off linearly, nothing outside its range."""
import pytest

from scvae.evaluation.equal_rate import envelope_at, equal_rate_margins, seed_means, setting_label, upper_envelope


def point(family, bits, psnr, *setting):
    return {"family": family, "bits_per_image": bits, "psnr": psnr, "setting": list(setting)}


BASELINE = [point("q", 1000, 20.0, "size=1"), point("q", 2000, 22.0, "size=2"),
            point("q", 1500, 19.0, "size=bad")]  # dominated: below the line from 1000 to 2000 bits


def test_the_envelope_drops_dominated_points_and_interpolates_in_bits():
    front = upper_envelope([(p["bits_per_image"], p["psnr"]) for p in BASELINE])
    assert front == [(1000, 20.0), (2000, 22.0)]
    assert envelope_at(front, 1250) == pytest.approx(20.5)
    assert envelope_at(front, 999) is None and envelope_at(front, 2001) is None


def test_the_envelope_is_concave_so_a_new_point_never_lowers_it():
    """A setting above its staircase neighbours but under the line joining two others (time-sharing between
    them reaches it) is not a corner: the 4,731-bit VAE point under the AE-rate line."""
    points = [(4013, 27.24), (4731, 27.30), (6611, 28.04)]
    assert upper_envelope(points) == [(4013, 27.24), (6611, 28.04)]
    before = envelope_at(upper_envelope([points[0], points[2]]), 4634)
    assert envelope_at(upper_envelope(points), 4634) == pytest.approx(before)
    assert upper_envelope([(1, 1.0), (2, 3.0), (3, 3.5)]) == [(1, 1.0), (2, 3.0), (3, 3.5)]  # concave already


def test_seeds_of_one_setting_are_averaged_before_the_margin():
    points = BASELINE + [point("s", 1400, 21.5, "k=1"), point("s", 1600, 20.5, "k=1", "seed=1"),
                         point("s", 3000, 25.0, "k=2")]
    rows = equal_rate_margins(points, "s", "q")
    assert [(r["setting"], r["seeds"]) for r in rows] == [("k=1", 2), ("k=2", 1)]
    pooled, outside = rows
    assert pooled["bits"] == 1500 and pooled["psnr"] == 21.0 and pooled["baseline"] == pytest.approx(21.0)
    assert pooled["margin"] == pytest.approx(0.0)
    assert pooled["margins"] == pytest.approx([0.7, -0.7])  # each seed at its own rate: 20.8 and 21.2 there
    assert outside["baseline"] is None and outside["margin"] is None and outside["margins"] == [None]


def test_the_baseline_is_seed_averaged_too():
    points = [point("q", 1000, 20.0), point("q", 1000, 21.0, "seed=1"), point("q", 2000, 22.0, "size=2"),
              point("s", 1000, 21.0, "k=1")]
    assert seed_means(points, "q")[0]["psnr"] == 20.5  # the preset's two seeds, not its better one
    assert equal_rate_margins(points, "s", "q")[0]["margin"] == pytest.approx(0.5)


def test_settings_from_scvae_rd_are_dicts_and_the_preset_has_none():
    assert setting_label({"setting": {"max_active": 2, "quantize_step": 1.0}}) == "max_active=2 quantize_step=1.0"
    assert setting_label({"setting": {}}) == "preset" == setting_label({"setting": ["seed=3"]})
    assert setting_label({"setting": ["b=1", "seed=1", "a=2"]}) == setting_label({"setting": ["a=2", "b=1"]})


def test_a_family_with_no_points_is_an_error():
    with pytest.raises(ValueError, match="no points of 'fsq'"):
        equal_rate_margins(BASELINE, "q", "fsq")


def test_against_others_reads_the_envelope_of_every_other_family_together():
    from scvae.evaluation.equal_rate import OTHERS

    points = BASELINE + [point("r", 1500, 21.8, "x=1"), point("r", 3000, 24.0, "x=2"), point("s", 1500, 21.5, "k=1"),
                         point("s", 2500, 23.5, "k=2")]
    rows = {r["setting"]: r for r in equal_rate_margins(points, "s", OTHERS)}
    assert rows["k=1"]["baseline"] == pytest.approx(21.8)  # r's point lifts the joint envelope above q's 21.0
    # q's 2000-bit point lies under the line from r's 1500 to r's 3000 (time-sharing beats it): not a corner
    assert rows["k=2"]["baseline"] == pytest.approx(21.8 + 2.2 * 1000 / 1500)
    assert rows["k=2"]["margin"] == pytest.approx(23.5 - (21.8 + 2.2 * 1000 / 1500))
