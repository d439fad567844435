"""The HTTP service: ``create_app(settings)`` in :mod:`service.app`, started by ``dehaze serve``.

HTTP concerns only (limits, formats, metrics, the web page); image work is done by ``dehaze``.
"""
