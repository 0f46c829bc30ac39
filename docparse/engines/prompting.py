"""The page request laid out by a model's own chat template (a GGUF file carries it), the image as a marker."""

from __future__ import annotations

import logging

from docparse.prompt import chat_text

log = logging.getLogger(__name__)

# What Qwen2.5-VL's chat template writes for an image part; mtmd writes the vision start and end itself.
IMAGE_PART = "<|vision_start|><|image_pad|><|vision_end|>"


def render_prompt(template: str | None, prompt: str, system_prompt: str, marker: str) -> str:
    """The prompt text for one page with `marker` where the image goes.

    `template` (Jinja, as in tokenizer_config.json and GGUF's tokenizer.chat_template) is rendered as
    transformers renders chat templates, for a system message and one user turn of [text, image], with the
    generation prompt; its one image part becomes `marker`. Without a template, or one that renders no
    single image part, the layout is Qwen2.5-VL's own (docparse.prompt.chat_text).
    """
    fallback = chat_text(prompt, system_prompt, "").replace("<|vision_start|><|vision_end|>", marker)
    if not template:
        return fallback
    from jinja2 import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    messages = [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": [{"type": "text", "text": prompt}, {"type": "image"}]},
    ]
    try:
        text = env.from_string(template).render(messages=messages, add_generation_prompt=True)
    except TemplateError as exc:
        log.warning("the model's chat template does not render (%s); using Qwen2.5-VL's layout", exc)
        return fallback
    if text.count(IMAGE_PART) != 1:
        log.warning("the model's chat template places no single image; using Qwen2.5-VL's layout")
        return fallback
    return text.replace(IMAGE_PART, marker)
