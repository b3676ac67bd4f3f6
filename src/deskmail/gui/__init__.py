"""The desktop application (PySide6, Qt Widgets) on the engine façade :class:`deskmail.app.Deskmail`.

Qt is imported only here. Engine work runs on worker threads (:mod:`deskmail.gui.tasks`) and
reports through signals; widgets are touched only on the GUI thread. Message data is always
shown as plain text (or as the renderer's sanitized HTML), never interpreted as markup.
"""
