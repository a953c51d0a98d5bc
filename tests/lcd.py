"""Reading the meter's LCD text lines in tests."""


def lcd_cut_reason(lines):
    """The reason on the LCD's "CUT: " line, joined when wrapped after a '_'."""
    for i, line in enumerate(lines):
        if line.startswith("CUT: "):
            text = line[5:]
            if text.endswith("_") and i + 1 < len(lines):
                text += lines[i + 1]
            return text
    return None
