import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetMangaRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class SearchMangaRequest(_message.Message):
    __slots__ = ("query", "limit", "offset", "sources")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    query: str
    limit: int
    offset: int
    sources: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, query: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., sources: _Optional[_Iterable[str]] = ...) -> None: ...

class MangaSearchResponse(_message.Message):
    __slots__ = ("results", "total_count", "page", "sources")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[Manga]
    total_count: int
    page: int
    sources: _containers.RepeatedCompositeFieldContainer[SourceReport]
    def __init__(self, results: _Optional[_Iterable[_Union[Manga, _Mapping]]] = ..., total_count: _Optional[int] = ..., page: _Optional[int] = ..., sources: _Optional[_Iterable[_Union[SourceReport, _Mapping]]] = ...) -> None: ...

class SourceReport(_message.Message):
    __slots__ = ("name", "status", "results", "error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: str
    results: int
    error: str
    def __init__(self, name: _Optional[str] = ..., status: _Optional[str] = ..., results: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class Manga(_message.Message):
    __slots__ = ("id", "slug", "title", "alt_titles", "authors", "description", "genres", "status", "total_chapters", "cover_image_url", "average_rating", "year", "source", "mangadex_id", "anilist_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    SLUG_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ALT_TITLES_FIELD_NUMBER: _ClassVar[int]
    AUTHORS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    GENRES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CHAPTERS_FIELD_NUMBER: _ClassVar[int]
    COVER_IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_RATING_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MANGADEX_ID_FIELD_NUMBER: _ClassVar[int]
    ANILIST_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    slug: str
    title: str
    alt_titles: _containers.RepeatedScalarFieldContainer[str]
    authors: _containers.RepeatedScalarFieldContainer[str]
    description: str
    genres: _containers.RepeatedScalarFieldContainer[str]
    status: str
    total_chapters: int
    cover_image_url: str
    average_rating: float
    year: int
    source: str
    mangadex_id: str
    anilist_id: int
    def __init__(self, id: _Optional[int] = ..., slug: _Optional[str] = ..., title: _Optional[str] = ..., alt_titles: _Optional[_Iterable[str]] = ..., authors: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., genres: _Optional[_Iterable[str]] = ..., status: _Optional[str] = ..., total_chapters: _Optional[int] = ..., cover_image_url: _Optional[str] = ..., average_rating: _Optional[float] = ..., year: _Optional[int] = ..., source: _Optional[str] = ..., mangadex_id: _Optional[str] = ..., anilist_id: _Optional[int] = ...) -> None: ...

class ProgressUpdateRequest(_message.Message):
    __slots__ = ("manga_id", "chapter", "status", "device", "volume")
    MANGA_ID_FIELD_NUMBER: _ClassVar[int]
    CHAPTER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    manga_id: int
    chapter: float
    status: str
    device: str
    volume: int
    def __init__(self, manga_id: _Optional[int] = ..., chapter: _Optional[float] = ..., status: _Optional[str] = ..., device: _Optional[str] = ..., volume: _Optional[int] = ...) -> None: ...

class ProgressUpdateResponse(_message.Message):
    __slots__ = ("success", "message", "progress")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    progress: Progress
    def __init__(self, success: _Optional[bool] = ..., message: _Optional[str] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("manga_id", "chapter", "status", "version", "device", "updated_at", "volume", "score", "started_on", "finished_on", "rereads", "rereading", "added_at", "title")
    MANGA_ID_FIELD_NUMBER: _ClassVar[int]
    CHAPTER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    STARTED_ON_FIELD_NUMBER: _ClassVar[int]
    FINISHED_ON_FIELD_NUMBER: _ClassVar[int]
    REREADS_FIELD_NUMBER: _ClassVar[int]
    REREADING_FIELD_NUMBER: _ClassVar[int]
    ADDED_AT_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    manga_id: int
    chapter: float
    status: str
    version: int
    device: str
    updated_at: _timestamp_pb2.Timestamp
    volume: int
    score: int
    started_on: str
    finished_on: str
    rereads: int
    rereading: bool
    added_at: _timestamp_pb2.Timestamp
    title: str
    def __init__(self, manga_id: _Optional[int] = ..., chapter: _Optional[float] = ..., status: _Optional[str] = ..., version: _Optional[int] = ..., device: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., volume: _Optional[int] = ..., score: _Optional[int] = ..., started_on: _Optional[str] = ..., finished_on: _Optional[str] = ..., rereads: _Optional[int] = ..., rereading: _Optional[bool] = ..., added_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., title: _Optional[str] = ...) -> None: ...
