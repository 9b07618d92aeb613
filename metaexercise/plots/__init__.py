"""Figures: each function takes a result object or DataFrame and an optional `ax`, returns the Figure and
never calls `show()`. `style.save_figure(fig, stem)` writes SVG and PNG."""
