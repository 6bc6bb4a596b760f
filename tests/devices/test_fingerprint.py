"""Fingerprint helpers: stable ids, readable CPU names, host facts."""

from devices.fingerprint import cpu_info, fingerprint_id, short_cpu_name


def test_id_ignores_id_label_and_key_order_but_not_values():
    fp = {"cpu_model": "X", "threads": 1, "torch": "2.0"}
    same = {"torch": "2.0", "threads": 1, "cpu_model": "X", "label": "anything", "id": "old"}
    assert fingerprint_id(fp) == fingerprint_id(same)
    assert fingerprint_id(fp) != fingerprint_id({**fp, "threads": 2})
    assert len(fingerprint_id(fp)) == 12 and int(fingerprint_id(fp), 16) >= 0


def test_short_cpu_name_drops_trademark_noise():
    assert short_cpu_name("Intel(R) Xeon(R) Gold 6226 CPU @ 2.70GHz") == "Intel Xeon Gold 6226"
    assert short_cpu_name("AMD EPYC 7763 64-Core Processor") == "AMD EPYC 7763"
    assert short_cpu_name("AMD EPYC") == "AMD EPYC"


def test_cpu_info_describes_this_host():
    info = cpu_info()
    assert info["cpu_model"] and info["cpu_cores"] >= 1 and 1 <= info["cpu_usable"] <= info["cpu_cores"]
