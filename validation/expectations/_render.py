"""A Data Docs renderer shared by Setlist's custom expectations.

Without one, GE renders a custom expectation as ``name(**kwargs)`` — for drift that dumps every bin
edge into the page. Each expectation supplies a one-line template over its own kwargs instead, and
warning-severity expectations say so, because GE's page does not display severity.
"""

from __future__ import annotations

from typing import Any

from great_expectations.render import LegacyRendererType, RenderedStringTemplateContent
from great_expectations.render.renderer.renderer import renderer


class TemplateRendered:
    """Mixin: subclasses implement ``_template(params) -> str`` using ``$name`` placeholders."""

    @classmethod
    def _template(cls, params: dict[str, Any]) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(
        cls,
        configuration: Any | None = None,
        result: Any | None = None,
        runtime_configuration: dict | None = None,
        **kwargs: Any,
    ) -> list:
        if configuration is None and result is not None:
            configuration = result.expectation_config
        params = dict(configuration.kwargs) if configuration is not None else {}
        for name, fld in getattr(cls, "__fields__", {}).items():  # GE drops kwargs left at their default
            if fld.default is not None and not name.startswith("_"):
                params.setdefault(name, fld.default)
        severity = getattr(configuration, "severity", None)
        warn_only = str(getattr(severity, "value", severity)) == "warning"
        template = cls._template(params) + (" (warning only)" if warn_only else "")
        return [
            RenderedStringTemplateContent(
                content_block_type="string_template",
                string_template={
                    "template": template,
                    "params": params,
                    "styling": (runtime_configuration or {}).get("styling") or {},
                },
            )
        ]
