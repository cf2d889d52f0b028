"""InternVL 1.5 image preprocessing, transcribed from the reference's description (spec 7:
train/dataset.py dynamic_preprocess + find_closest_aspect_ratio, and build_transform =
convert('RGB') -> Resize(448, BICUBIC) -> ToTensor -> Normalize(ImageNet)). Used by the
parity tests in tests/image as the oracle; runs under /usr/bin/python3 (Debian PIL, torch)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def candidate_grids(min_num, max_num):
    # Exactly the reference expression: a set (CPython iteration order) sorted by i*j.
    target_ratios = set(
        (i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
        if i * j <= max_num and i * j >= min_num)
    return sorted(target_ratios, key=lambda x: x[0] * x[1])


def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    best_ratio_diff = float('inf')
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def grid_for(width, height, min_num, max_num, image_size, ratios=None):
    if ratios is None:
        ratios = candidate_grids(min_num, max_num)
    return find_closest_aspect_ratio(width / height, ratios, width, height, image_size)


def dynamic_preprocess(image, min_num=1, max_num=12, image_size=448, use_thumbnail=True):
    orig_width, orig_height = image.size
    cols, rows = grid_for(orig_width, orig_height, min_num, max_num, image_size)
    target_width = image_size * cols
    target_height = image_size * rows
    blocks = cols * rows
    resized_img = image.resize((target_width, target_height))   # PIL default: BICUBIC
    tiles = []
    for i in range(blocks):
        box = ((i % (target_width // image_size)) * image_size,
               (i // (target_width // image_size)) * image_size,
               ((i % (target_width // image_size)) + 1) * image_size,
               ((i // (target_width // image_size)) + 1) * image_size)
        tiles.append(resized_img.crop(box))
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size)))
    return tiles, (cols, rows)


def to_tensor_normalize(tile):
    """torchvision 0.14 ToTensor + Normalize, spelled out with torch (torchvision itself is
    not a project dependency): u8 HWC -> float32 CHW / 255, then (x - mean) / std."""
    import numpy as np
    import torch
    img = torch.from_numpy(np.array(tile, np.uint8, copy=True))
    img = img.view(tile.size[1], tile.size[0], 3).permute((2, 0, 1)).contiguous()
    img = img.to(dtype=torch.float32).div(255)
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=torch.float32).view(-1, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, dtype=torch.float32).view(-1, 1, 1)
    return img.clone().sub_(mean).div_(std)
