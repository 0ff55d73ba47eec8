"""The command line runs end to end."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.smoke


def test_stream_command_reports_time_per_frame():
    out = subprocess.run([sys.executable, "-m", "lightning_aapt", "stream", "--preset", "tiny", "--frames", "20",
                          "--latent-size", "4", "4", "--warmup", "2"], capture_output=True, text=True, check=True)
    assert "ms/frame" in out.stdout and "20 frames" in out.stdout


def test_unknown_command_fails_with_usage():
    out = subprocess.run([sys.executable, "-m", "lightning_aapt", "nope"], capture_output=True, text=True)
    assert out.returncode == 2 and "Commands:" in out.stdout
