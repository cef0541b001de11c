"""Tests of deploy mode, the deploy checkpoint and the deploy tools."""
