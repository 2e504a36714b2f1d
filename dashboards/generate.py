#!/usr/bin/env python3
"""Generates the Grafana dashboards in this directory (sluice-overview.json, sluice-rollout.json).

Edit here, run `python3 dashboards/generate.py`, commit both. crates/sluice-notify/tests/it/dashboards.rs checks the
JSON and that every sluice_* name in the queries is one sluice exports.
"""
import os
import json

DS = {"type": "prometheus", "uid": "${datasource}"}

def ds_var():
    return {"name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1,
            "regex": "", "options": [], "includeAll": False, "multi": False}

def query_var(name, label, query, multi=False):
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "definition": query, "refresh": 2, "sort": 1, "hide": 0,
            "includeAll": multi, "multi": multi, "current": {}, "options": [], "regex": ""}

class Builder:
    def __init__(self):
        self.panels = []
        self.next_id = 1
        self.y = 0
        self.x = 0
        self.row_h = 0
    def add(self, kind, title, targets, w, h, unit=None, options=None, field=None, desc=None):
        if self.x + w > 24:
            self.x = 0
            self.y += self.row_h
            self.row_h = 0
        defaults = {}
        if unit: defaults["unit"] = unit
        if field: defaults.update(field)
        p = {"id": self.next_id, "type": kind, "title": title, "datasource": DS,
             "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h},
             "fieldConfig": {"defaults": defaults, "overrides": []},
             "options": options or {},
             "targets": [dict(t, refId=chr(65 + i), datasource=DS) for i, t in enumerate(targets)]}
        if desc: p["description"] = desc
        self.panels.append(p)
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)

def t(expr, legend="__auto", instant=False, fmt="time_series"):
    d = {"expr": expr, "legendFormat": legend, "range": not instant, "instant": instant, "format": fmt}
    return d

STAT = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value", "graphMode": "none", "textMode": "auto", "justifyMode": "auto"}
TS = {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"], "showLegend": True},
      "tooltip": {"mode": "multi", "sort": "desc"}}

def dashboard(uid, title, desc, templating, panels):
    return {
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "description": desc,
        "editable": True, "fiscalYearStartMonth": 0, "graphTooltip": 1, "id": None, "links": [],
        "liveNow": False, "panels": panels, "refresh": "30s", "schemaVersion": 39,
        "tags": ["sluice", "progressive-delivery"], "templating": {"list": templating},
        "time": {"from": "now-6h", "to": "now"}, "timepicker": {}, "timezone": "",
        "title": title, "uid": uid, "version": 1, "weekStart": ""}

# ---------------------------------------------------------------- overview
b = Builder()
NS = 'namespace=~"$namespace"'
b.add("stat", "Progressing", [t(f'count(sluice_rollout_phase{{{NS},phase="Progressing"}} == 1) or vector(0)', instant=True)], 4, 4, options=STAT)
b.add("stat", "Paused", [t(f'count(sluice_rollout_phase{{{NS},phase="Paused"}} == 1) or vector(0)', instant=True)], 4, 4, options=STAT,
      field={"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 1}]}})
b.add("stat", "Failed", [t(f'count(sluice_rollout_phase{{{NS},phase="Failed"}} == 1) or vector(0)', instant=True)], 4, 4, options=STAT,
      field={"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}})
b.add("stat", "Rollbacks (range)", [t(f'sum(increase(sluice_rollout_events_total{{{NS},reason="RolledBack"}}[$__range])) or vector(0)', instant=True)], 4, 4, options=STAT,
      field={"decimals": 0, "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}})
b.add("stat", "Promotions (range)", [t(f'sum(increase(sluice_rollout_events_total{{{NS},reason="Succeeded"}}[$__range])) or vector(0)', instant=True)], 4, 4, options=STAT, field={"decimals": 0})
b.add("stat", "Leader", [t('max(sluice_leader)', instant=True)], 4, 4, options=STAT,
      field={"mappings": [{"type": "value", "options": {"0": {"text": "no", "color": "orange"}, "1": {"text": "yes", "color": "green"}}}]},
      desc="1 while a sluice instance holds the lease (standalone: always).")
b.add("table", "Rollouts", [
        t(f'sluice_rollout_phase{{{NS}}} == 1', instant=True, fmt="table"),
        t(f'sluice_rollout_canary_weight{{{NS}}}', instant=True, fmt="table"),
        t(f'sluice_rollout_step{{{NS}}} + 1', instant=True, fmt="table")], 24, 8,
      options={"showHeader": True, "cellHeight": "sm"},
      desc="Every rollout: its phase, canary weight and (1-based) step.")
b.panels[-1]["transformations"] = [
    {"id": "merge", "options": {}},
    {"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True, "instance": True, "job": True, "Value #A": True},
                                    "renameByName": {"Value #B": "canary weight %", "Value #C": "step"},
                                    "indexByName": {"namespace": 0, "name": 1, "phase": 2, "Value #B": 3, "Value #C": 4}}}]
b.add("timeseries", "Canary weight", [t(f'sluice_rollout_canary_weight{{{NS}}}', "{{namespace}}/{{name}}")], 12, 9, unit="percent",
      options=TS, field={"min": 0, "max": 100, "custom": {"lineInterpolation": "stepAfter", "fillOpacity": 10}})
b.add("timeseries", "Rollbacks", [t(f'sum by (namespace, name) (increase(sluice_rollout_events_total{{{NS},reason="RolledBack"}}[$__rate_interval]))', "{{namespace}}/{{name}}")], 12, 9,
      options=TS, field={"decimals": 0, "custom": {"drawStyle": "bars", "fillOpacity": 80}})
b.add("timeseries", "Analysis verdicts", [t(f'sum by (result) (rate(sluice_analysis_verdicts_total{{{NS}}}[$__rate_interval]))', "{{result}}")], 8, 8, unit="ops", options=TS,
      field={"custom": {"stacking": {"mode": "normal"}, "fillOpacity": 30}})
b.add("timeseries", "Webhook calls", [t('sum by (type, outcome) (rate(sluice_webhook_calls_total[$__rate_interval]))', "{{type}} {{outcome}}")], 8, 8, unit="ops", options=TS)
b.add("timeseries", "Notifications", [t('sum by (sink, outcome) (rate(sluice_notifications_total[$__rate_interval]))', "{{sink}} {{outcome}}")], 8, 8, unit="ops", options=TS)
b.add("timeseries", "Tick latency", [
        t('histogram_quantile(0.5, sum by (le) (rate(sluice_tick_duration_seconds_bucket[$__rate_interval])))', "p50"),
        t('histogram_quantile(0.99, sum by (le) (rate(sluice_tick_duration_seconds_bucket[$__rate_interval])))', "p99")], 8, 8, unit="s", options=TS)
b.add("timeseries", "Webhook latency p99", [t('histogram_quantile(0.99, sum by (type, le) (rate(sluice_webhook_duration_seconds_bucket[$__rate_interval])))', "{{type}}")], 8, 8, unit="s", options=TS)
b.add("timeseries", "Errors", [t('sum by (kind) (rate(sluice_errors_total[$__rate_interval]))', "{{kind}}")], 8, 8, unit="ops", options=TS)
overview = dashboard("sluice-overview", "sluice / overview",
    "All rollouts managed by sluice: phases, canary weights, rollbacks, and sluice's own health.",
    [ds_var(), query_var("namespace", "Namespace", "label_values(sluice_rollout_phase, namespace)", multi=True)],
    b.panels)

# ---------------------------------------------------------------- per rollout
b = Builder()
R = 'namespace="$namespace",name="$rollout"'
b.add("stat", "Phase", [t(f'sluice_rollout_phase{{{R}}} == 1', "{{phase}}", instant=True)], 6, 4,
      options=dict(STAT, textMode="name", colorMode="background"))
b.add("stat", "Canary weight", [t(f'sluice_rollout_canary_weight{{{R}}}', instant=True)], 6, 4, unit="percent", options=STAT)
b.add("stat", "Step", [t(f'sluice_rollout_step{{{R}}} + 1', instant=True)], 6, 4, options=STAT, desc="1-based step number.")
b.add("stat", "Rollbacks (range)", [t(f'sum(increase(sluice_rollout_events_total{{{R},reason="RolledBack"}}[$__range])) or vector(0)', instant=True)], 6, 4, options=STAT, field={"decimals": 0})
b.add("state-timeline", "Phase over time", [t(f'max by (phase) (sluice_rollout_phase{{{R}}})', "{{phase}}")], 24, 5,
      options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8, "legend": {"showLegend": False}},
      field={"mappings": [{"type": "value", "options": {"0": {"text": " ", "color": "transparent"}, "1": {"text": "active", "color": "blue"}}}]})
b.add("timeseries", "Canary weight and step", [
        t(f'sluice_rollout_canary_weight{{{R}}}', "canary weight %"),
        t(f'sluice_rollout_step{{{R}}} + 1', "step")], 12, 9, options=TS,
      field={"min": 0, "custom": {"lineInterpolation": "stepAfter"}})
b.add("timeseries", "Verdicts by metric", [t(f'sum by (metric, result) (increase(sluice_analysis_verdicts_total{{{R}}}[$__rate_interval]))', "{{metric}} {{result}}")], 12, 9,
      options=TS, field={"decimals": 0, "custom": {"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal"}}})
b.add("timeseries", "Analysed metrics vs thresholds", [
        t(f'sluice_analysis_value{{{R}}}', "{{metric}}"),
        t(f'sluice_analysis_threshold{{{R}}}', "{{metric}} {{bound}}")], 24, 10, options=TS,
      field={"custom": {"lineInterpolation": "stepAfter"}},
      desc="Each metric's last measured value, and its min/max thresholds (dashed).")
b.panels[-1]["fieldConfig"]["overrides"] = [{"matcher": {"id": "byFrameRefID", "options": "B"},
    "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}]}]
b.add("timeseries", "Analysis duration", [
        t(f'histogram_quantile(0.9, sum by (le) (rate(sluice_analysis_duration_seconds_bucket{{{R}}}[$__rate_interval])))', "p90")], 12, 8, unit="s", options=TS)
b.add("timeseries", "Events", [t(f'sum by (reason) (increase(sluice_rollout_events_total{{{R}}}[$__rate_interval]))', "{{reason}}")], 12, 8,
      options=TS, field={"decimals": 0, "custom": {"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal"}}})
rollout = dashboard("sluice-rollout", "sluice / rollout",
    "One rollout: traffic split, steps, analysis verdicts and the analysed metrics against their thresholds.",
    [ds_var(),
     query_var("namespace", "Namespace", "label_values(sluice_rollout_phase, namespace)"),
     query_var("rollout", "Rollout", 'label_values(sluice_rollout_phase{namespace="$namespace"}, name)')],
    b.panels)

for name, d in [("sluice-overview.json", overview), ("sluice-rollout.json", rollout)]:
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name), "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
