"""The two list files we write."""

from mangahub.lists.malwrite import write_mal_xml
from mangahub.lists.native import write_native_json

__all__ = ["write_mal_xml", "write_native_json"]
