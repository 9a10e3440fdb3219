"""Neural style transfer (Gatys, Ecker & Bethge) on VGG19: the engine, free of any server.

The engine's API is what this module exports; its submodules are its parts (docs/engine.md).

- Running: :class:`Stylizer` (load the weights once, keep style statistics in a
  :class:`StyleCache`, :meth:`~Stylizer.check` a
  :class:`Job`, :meth:`~Stylizer.stylize` it or a batch), :class:`StyleParams` (every
  parameter, declared once), :class:`Progress` and :class:`LossTerms` for a ``Callback``,
  :class:`Result`, and why a job stopped early (:data:`STOP_REASONS`);
  :func:`reuse_freed_memory` for a program's entry point (steps reuse freed host memory).
- Images: :func:`decode_image` (bounded, colour-managed), :func:`encode_image`,
  :func:`content_type`, :func:`resize_longest`.
- Errors: every input error is an :class:`InputError` (:class:`ParamError`,
  :class:`ImageError`) with a code and the field at fault; :class:`DeadlineExceeded`,
  :class:`WeightsError`; :func:`quote` shows a caller's value in a message.
- Limits and cost, for a caller that serves others: :data:`MAX_STYLES` and
  :func:`check_style_count`, :data:`PRECISIONS`, :data:`COMPILE_MODES`, :func:`work_pixels` and
  :func:`requested_work` (a job's cost in pixels through VGG), and :func:`declared` /
  :func:`parameter_ranges` to declare and describe settings the way the parameters are.

The names are loaded on first use (``__init__.pyi`` lists them, for readers and type
checkers alike), so a caller that only needs the parameters, the limits or the errors, such
as the server's launcher and its jobs API, never imports torch.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
