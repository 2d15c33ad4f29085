"""Prefect flows: the session flow, runners, workflows and scheduled maintenance.

Flows reach the control plane over HTTP (or the database), never by importing
``orchestration``.
"""
