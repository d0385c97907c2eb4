"""Draws labelled boxes with Pillow (only for the picture a person looks at)."""
import colorsys

from PIL import Image, ImageDraw, ImageFont


def _colour(class_id):
    r, g, b = colorsys.hsv_to_rgb((class_id * 0.618034) % 1.0, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def annotate(image_path, detections, out_path):
    with Image.open(image_path) as im:
        im = im.convert("RGB")
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default()
    width = max(2, round(min(im.size) / 200))
    # one rectangle per box; classes sharing a box share its label, as Darknet joins them
    boxes = {}
    for d in detections:
        boxes.setdefault(d.det_index, []).append(d)
    for group in boxes.values():
        d = group[0]
        left, top, right, bottom = d.bbox
        colour = _colour(d.class_id)
        draw.rectangle([left, top, right, bottom], outline=colour, width=width)
        text = ", ".join(f"{g.label} {g.prob:.2f}" for g in group)
        tb = draw.textbbox((left, top), text, font=font)
        y = max(0, top - (tb[3] - tb[1]) - 4)
        draw.rectangle([left, y, left + (tb[2] - tb[0]) + 4, y + (tb[3] - tb[1]) + 4],
                       fill=colour)
        draw.text((left + 2, y + 1), text, fill=(0, 0, 0), font=font)
    im.save(out_path)
